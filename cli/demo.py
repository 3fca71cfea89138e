"""``modality-conflict demo``: the whole pipeline on the embedded default model, offline, on the CPU.

Take the model (the packaged demo LLaVA, or ``--retrain`` it into a cache; or SmolLM2-135M-Instruct with a
random vision half), build a demo-size dataset (both sets for ``smollm2``; the demo model knows only
colours), evaluate through lmms-eval (in-process, or ``--engine vllm`` through a vLLM server it starts and
stops), probe the layers from the sample logs, write the report, and print the headline (also
``headline.txt``; each step's time goes to ``timings.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modality_conflict.analysis.formatting import interval_text, number_text
from modality_conflict.analysis.probe.runner import oscillation_text
from modality_conflict.cli.arguments import add_subcommand, positive_int
from modality_conflict.cli.arguments import seed as seed_type
from modality_conflict.dataset_builder.atomic import write_text_atomic
from modality_conflict.mc_tasks.names import GROUP, MAIN_TASK

#: Groups of the demo model's dataset: about 3,100 conflicts, enough for a balance-point interval about
#: 0.4 nat wide, and an evaluation of about two minutes on two cores (the demo stays under four).
DEMO_GROUPS = 80
#: The SmolLM2 variant is slower per prompt (135M parameters): the small preset.
SMOLLM2_GROUPS = 12


def _run(command: list[str], env: dict[str, str] | None = None) -> None:
    print("+", " ".join(command), flush=True)
    completed = subprocess.run(command, check=False, env=env)
    if completed.returncode != 0:
        raise RuntimeError(f"step failed with status {completed.returncode}: {' '.join(command)}")


def _default_cache() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "modality-conflict" / "models"


def _model_dir(args: argparse.Namespace, out: Path, log: Callable[[str], None]) -> tuple[Path, str]:
    """The checkpoint folder to evaluate and how it was obtained."""
    if args.checkpoint:
        folder = Path(args.checkpoint).resolve()
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"--checkpoint {folder}: no config.json (not a checkpoint folder)")
        return folder, "checkpoint given with --checkpoint"
    if args.model == "smollm2":
        from modality_conflict.models.smollm2_llava import build_smollm2_llava

        model_dir = out / "model-smollm2-llava"
        if not (model_dir / "config.json").exists():
            log(f"building {model_dir} (SmolLM2-135M-Instruct language model, random vision tower)")
            build_smollm2_llava(model_dir)
        return model_dir, "SmolLM2-135M-Instruct LLaVA, random vision half"
    from modality_conflict.models.demo.cache import cached_checkpoint
    from modality_conflict.models.demo.checkpoint import checkpoint_problem, shipped_checkpoint
    from modality_conflict.models.demo.recipe import TrainingRecipe, recipe_from_file

    if not args.retrain:
        shipped = shipped_checkpoint()
        problem = checkpoint_problem(shipped, seed=0, recipe=TrainingRecipe())
        if problem:
            raise ValueError(f"packaged demo checkpoint {shipped}: {problem} (reinstall, or use --retrain)")
        return shipped, "packaged demo model (seed 0)"
    cache = Path(args.cache_dir) if args.cache_dir else _default_cache()
    log(f"demo model for seed {args.model_seed}: {cache} (trained on first use, about 4 minutes)")
    recipe = recipe_from_file(args.recipe) if args.recipe else TrainingRecipe()
    folder = cached_checkpoint(cache, seed=args.model_seed, recipe=recipe, log=log)
    return folder, f"demo model trained, seed {args.model_seed}" + (
        f", recipe {args.recipe}" if args.recipe else ""
    )


def _interval(low: Any, high: Any) -> str:
    shown = interval_text(low, high, signed=True)
    return f"95% CI {shown}" if shown else "no interval"


def headline_lines(summary: Any, probe: dict[str, Any] | None) -> list[str]:
    """The demo's headline from the main task's :class:`TaskSummary` and the content of ``probe.json``."""
    rates = (summary.number("tfr"), summary.number("vfr"), summary.number("other_rate"))
    lines = [
        f"conflicts: {summary.get('n_conflicts')}  TFR {number_text(rates[0])}  VFR {number_text(rates[1])}  "
        f"other {number_text(rates[2])}"
    ]
    point = summary.balance_point
    preference = summary.inherent_preference()
    if point.defined:
        verdict = preference.text.split(" (")[0]  # the phrase; the numbers are printed here already
        lines.append(
            f"balance point {point.estimate:+.3f}, {_interval(point.ci_low, point.ci_high)} "
            f"({point.ci_method or 'delta'}): {verdict}"
        )
    else:
        lines.append(f"balance point {point.status}: {preference.text}")
    slope_low, slope_high = summary.number("law_slope_ci_low"), summary.number("law_slope_ci_high")
    slope = number_text(summary.logistic_fit[1], signed=True)
    lines.append(
        f"law: slope {slope}, {_interval(slope_low, slope_high)}; verdict {summary.get('law_verdict', 'n/a')}"
    )
    for label, key in (
        ("vision-only accuracy by tier", "vision_accuracy_by_tier"),
        ("vision-only entropy by tier ", "mean_hv_by_tier"),
        ("text-only accuracy by tier  ", "text_accuracy_by_tier"),
        ("text-only entropy by tier   ", "mean_ht_by_tier"),
    ):
        table = summary.accuracy_by_tier(key) if "accuracy" in key else summary.tier_table(key)
        cells = sorted(((int(t), v) for t, v in table.items()), key=lambda cell: cell[0])
        lines.append(f"{label}: " + " ".join(f"{t}:{number_text(v)}" for t, v in cells))
    if probe is None:
        lines.append("oscillations: no probe")
    else:
        main = probe.get("aggregates", {}).get("by_control", {}).get("none", {})
        if "ambiguous" in main:
            lines.append(
                f"oscillations (logit lens, {probe.get('n_layers')} layers): ambiguous "
                f"{oscillation_text(main['ambiguous'])} vs clear {oscillation_text(main['clear'])}"
            )
        else:
            lines.append(f"oscillations: {oscillation_text(main)} (regions undefined: no balance point)")
    return lines


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _evaluate_served(
    args: argparse.Namespace,
    model_dir: Path,
    out: Path,
    eval_command: list[str],
    env: dict[str, str],
    log: Callable[[str], None],
    lap: Callable[[str, float], float],
    mark: float,
) -> float:
    """Serve ``model_dir`` with vLLM on a loopback port, evaluate through it, and stop it on every exit."""
    from modality_conflict.models.vllm_server import VLLMServer, vllm_python

    python = vllm_python(args.vllm_python)  # checked again: found before the dataset was built
    server = VLLMServer(python, model_dir, out / "vllm-server.log", start_timeout=args.vllm_timeout, env=env)
    log(f"starting vLLM ({python}) on {server.base_url}; its log: {server.log}")
    # SIGTERM unwinds like Ctrl-C, so the server (in its own session) is stopped too.
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        with server:
            mark = lap("server start", mark)
            model_args = f"base_url={server.base_url},cache={out / 'served-responses.sqlite'}"
            _run([*eval_command, "--model", "modality_conflict_openai", "--model-args", model_args], env)
            mark = lap("evaluation", mark)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return mark


def run_demo(args: argparse.Namespace) -> int:
    from modality_conflict.analysis.results import read_task_results

    started = time.perf_counter()
    timings: dict[str, float] = {}

    def log(line: str) -> None:
        print(line, flush=True)

    def lap(step: str, since: float) -> float:
        now = time.perf_counter()
        timings[step] = round(now - since, 1)
        return now

    if args.checkpoint and (args.retrain or args.model != "demo"):
        raise ValueError("--checkpoint replaces --model and --retrain; give only one of them")
    if args.recipe and not (args.model == "demo" and args.retrain):
        raise ValueError("--recipe applies to --retrain of the demo model only")
    if args.engine == "vllm":
        from modality_conflict.models.vllm_server import vllm_python

        vllm_python(args.vllm_python)  # a missing vLLM is reported before any work is done
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "modality_conflict.cli.main"]
    env = dict(os.environ)
    if args.model == "demo":
        # The demo model's matrices are tiny: a second torch thread only adds contention (measured: the
        # evaluation takes several times longer with two threads than with one on two cores).
        env.setdefault("OMP_NUM_THREADS", "1")
    model_dir, model_note = _model_dir(args, out, log)
    mark = lap("model", started)

    groups = args.groups or (DEMO_GROUPS if args.model == "demo" else SMOLLM2_GROUPS)
    # One folder per dataset under data/: `--data data` gives every task of the group its own.
    data_dir = out / "data"
    datasets = ("color",) if args.model == "demo" else ("color", "attribute")
    for dataset in datasets:
        build = [*cli, "build", "--dataset", dataset, "--groups", str(groups), "--seed", str(args.seed)]
        _run([*build, "--out", str(data_dir / dataset), "--quiet"], env)
    tasks = MAIN_TASK if args.model == "demo" else GROUP
    mark = lap("dataset", mark)

    results_dir = out / "results"
    eval_args = ["--tasks", tasks, "--data", str(data_dir), "--output", str(results_dir)]
    eval_args += ["--batch-size", str(args.batch_size)]
    probe = [*cli, "probe", "--results", str(results_dir), "--task", MAIN_TASK, "--out", str(out / "probe")]
    if args.engine == "vllm":
        mark = _evaluate_served(args, model_dir, out, [*cli, "eval", *eval_args], env, log, lap, mark)
        # Served answers carry no lens: the probe answers the conflict rows in-process.
        probe += ["--model", str(model_dir), "--data", str(data_dir / "color")]
        model_note += ", answered by a vLLM server"
    else:
        model_args = f"pretrained={model_dir},device=cpu,device_map=cpu"
        _run([*cli, "eval", "--model", "modality_conflict_hf", "--model-args", model_args, *eval_args], env)
        mark = lap("evaluation", mark)

    probe_dir = out / "probe"
    _run(probe, env)
    mark = lap("probe", mark)
    report_dir = out / "report"
    _run([*cli, "report", str(results_dir), "--out", str(report_dir)], env)
    mark = lap("report", mark)
    timings["total"] = round(mark - started, 1)

    run = next(r for r in read_task_results([results_dir], tasks=[MAIN_TASK]))
    probe = json.loads((probe_dir / "probe.json").read_text())
    lines = [f"model: {model_dir} ({model_note}); {groups} groups, seed {args.seed}"]
    lines += headline_lines(run.summary, probe)
    split = ", ".join(f"{step} {seconds:.0f} s" for step, seconds in timings.items() if step != "total")
    lines.append(f"wall time {timings['total']:.0f} s ({split})")
    write_text_atomic(out / "headline.txt", "\n".join(lines) + "\n")
    payload = {"model": str(model_dir), "groups": groups, "seed": args.seed, "seconds": timings}
    write_text_atomic(out / "timings.json", json.dumps(payload, indent=2) + "\n")
    print("", *lines, "", f"dataset: {data_dir}", f"results: {results_dir}", sep="\n")
    print(f"probe:   {probe_dir / 'heatmap.png'}", f"report:  {report_dir / 'index.html'}", sep="\n")
    return 0


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> None:
    parser = add_subcommand(
        subparsers, name, run_demo, "run the whole pipeline offline on the embedded default model"
    )
    parser.add_argument("--out", default="demo_out", help="folder for the dataset, results, probe and report")
    parser.add_argument(
        "--model",
        choices=("demo", "smollm2"),
        default="demo",
        help="demo: the packaged demo model that sees (default); smollm2: SmolLM2-135M with a random "
        "vision half",
    )
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="train the demo model (seed --model-seed) instead of using the packaged copy; cached",
    )
    parser.add_argument(
        "--checkpoint",
        metavar="DIR",
        help="evaluate this LLaVA checkpoint folder on the demo's colour dataset instead of --model",
    )
    parser.add_argument("--model-seed", type=seed_type, default=0, help="seed of --retrain (default 0)")
    parser.add_argument(
        "--recipe",
        metavar="FILE",
        help="with --retrain: JSON object of recipe fields to change (see train-demo-model)",
    )
    parser.add_argument("--cache-dir", help="cache of --retrain (default ~/.cache/modality-conflict/models)")
    parser.add_argument(
        "--groups",
        type=positive_int,
        help=f"item groups of the dataset (default {DEMO_GROUPS} for demo, {SMOLLM2_GROUPS} for smollm2)",
    )
    parser.add_argument("--seed", type=seed_type, default=0, help="dataset seed (default 0)")
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument(
        "--engine",
        choices=("hf", "vllm"),
        default="hf",
        help="hf: answer in-process (default); vllm: start a vLLM server on a loopback port and answer "
        "through it with modality_conflict_openai (the logit-lens probe still runs in-process)",
    )
    parser.add_argument(
        "--vllm-python",
        metavar="PYTHON",
        help="with --engine vllm: the interpreter that has vLLM (default $MC_VLLM_PYTHON, else the one "
        "`make vllm-env` builds)",
    )
    parser.add_argument(
        "--vllm-timeout",
        type=positive_int,
        default=600,
        help="with --engine vllm: seconds to wait for the server to answer (default 600)",
    )
