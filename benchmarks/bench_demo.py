"""Where the time of the demo goes: training the demo model, building the dataset, evaluation, probe, report.

Two measurements, each a real command run as a user runs it (a child process, wall and CPU time):

- ``training`` (unless ``--no-train``): ``modality-conflict train-demo-model --seed 0`` on the default
  recipe (one thread); its weights are compared with the packaged copy (they must be identical);
- ``demo``: ``modality-conflict demo`` on the packaged model (``--groups`` item groups, the demo's default
  when omitted); the split comes from the ``timings.json`` it writes, the figures from its headline.

``--quick`` trains a reduced recipe (seconds, weights not compared) and runs the demo on 2 groups.

Usage::

    python benchmarks/bench_demo.py [--quick] [--no-train] [--groups N] [--out benchmarks/results_demo.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_common

HERE = bench_common.HERE
QUICK_RECIPE = {
    "layouts_large": 2,
    "layouts_small": 2,
    "colourings_per_layout": 1,
    "vision_steps": 10,
    "steps": 10,
    "vision_first_steps": 2,
    "curriculum": [[0, 13]],
}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "modality_conflict.cli.main", *args]


def _timed(command: list[str], log: Path) -> dict[str, float]:
    """Run ``command`` (output to ``log``); its wall time and the CPU time of its process tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with log.open("w") as handle:
        completed = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        tail = log.read_text()[-2000:]
        raise RuntimeError(f"{' '.join(command)} exited {completed.returncode}:\n{tail}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1)}


def measure_training(work: Path, quick: bool) -> dict[str, Any]:
    from modality_conflict.models.demo.checkpoint import WEIGHTS_FILE, shipped_checkpoint

    out = work / "demo_trained"
    shutil.rmtree(out, ignore_errors=True)  # the command refuses a non-empty folder
    command = _cli("train-demo-model", "--out", str(out), "--seed", "0")
    if quick:
        recipe = work / "quick_recipe.json"
        recipe.write_text(json.dumps(QUICK_RECIPE))
        command += ["--recipe", str(recipe)]
    timed = _timed(command, work / "train.log")
    report: dict[str, Any] = {"recipe": "reduced" if quick else "default", **timed}
    trained = hashlib.sha256((out / WEIGHTS_FILE).read_bytes()).hexdigest()
    shipped = hashlib.sha256((shipped_checkpoint() / WEIGHTS_FILE).read_bytes()).hexdigest()
    report["weights_sha256"] = trained
    report["identical_to_packaged"] = None if quick else trained == shipped
    return report


def measure_demo(work: Path, groups: int | None) -> dict[str, Any]:
    out = work / "demo_out"
    shutil.rmtree(out, ignore_errors=True)
    command = _cli("demo", "--out", str(out))
    if groups is not None:
        command += ["--groups", str(groups)]
    report: dict[str, Any] = _timed(command, work / "demo_run.log")
    timings = json.loads((out / "timings.json").read_text())
    report["groups"] = timings["groups"]
    report["split_seconds"] = timings["seconds"]
    report["headline"] = (out / "headline.txt").read_text().splitlines()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced training recipe, 2-group demo")
    parser.add_argument("--no-train", action="store_true", help="skip the training run (about 4-6 min)")
    parser.add_argument("--groups", type=int, help="demo dataset groups (default: the demo's own)")
    parser.add_argument("--work", type=Path, help="folder for the runs (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=HERE / "results_demo.json")
    args = parser.parse_args(argv)
    bench_common.set_offline_env()
    machine_start = bench_common.machine_info()
    print("machine: " + bench_common.describe_machine(machine_start), file=sys.stderr, flush=True)
    groups = 2 if args.quick and args.groups is None else args.groups
    with tempfile.TemporaryDirectory(prefix="mc-bench-demo-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        report: dict[str, Any] = {"quick": args.quick}
        if not args.no_train:
            report["training"] = measure_training(work, args.quick)
            print(f"training: {report['training']}", file=sys.stderr, flush=True)
        report["demo"] = measure_demo(work, groups)
    machine = bench_common.machine_info()
    machine["load_average_at_start"] = machine_start["load_average_1_5_15"]
    report["machine"] = machine
    bench_common.write_report(report, args.out)
    demo = report["demo"]
    split = ", ".join(f"{k} {v:.0f} s" for k, v in demo["split_seconds"].items() if k != "total")
    print(f"demo on {demo['groups']} groups: {demo['wall_seconds']:.0f} s wall ({split})")
    if "training" in report:
        t = report["training"]
        wall, cpu = t["wall_seconds"], t["cpu_seconds"]
        print(f"training ({t['recipe']} recipe): {wall:.0f} s wall, {cpu:.0f} s CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
