"""What it costs when the pinned dataset resolves itself: first run (build into the cache) and cached runs.

Two measurements:

- ``resolution``: the resolver alone, in this process, on an empty cache folder: the first call builds
  the pinned dataset and checks its fingerprint; later calls only verify the cached copy (sizes, then
  sha256 of every file) and an explicit ``MODALITY_CONFLICT_DATA`` folder is verified the same way. Beside
  it, what a task pays for its rows: the verified read the data hook makes (each shard read once, hashed
  and parsed from those bytes) and, for comparison, ``datasets.load_dataset`` on the same folder (first
  call, then from its Arrow cache), which would be faster but reads what the card names, unverified.
- ``lmms_eval`` (unless ``--no-lmms-eval``): three runs of the real command,
  ``lmms-eval --model modality_conflict_hf --tasks modality_conflict_color --limit 1`` on a tiny random
  LLaVA, with no Hub (``HF_HUB_OFFLINE=1``): on an empty cache, on the filled cache, and on an explicit
  folder. The differences of their wall times are the overhead a user sees; the resolver's own time is
  read from the line it prints (``ready in X s``).

``--groups N`` measures a smaller set pinned by its own fingerprint (a quick smoke run; the lmms-eval
runs always use the canonical set, since the tasks pin it).

Usage::

    python benchmarks/bench_data.py [--dataset color|attribute] [--workers 2] [--repeats 5]
                                    [--no-lmms-eval] [--groups N] [--out benchmarks/results_data.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_common

HERE = bench_common.HERE
READY = re.compile(r"\[modality_conflict\] data: (\w+) .*; ready in ([0-9.]+) s")


def _quiet(line: str) -> None:
    del line


TASKS = {"color": "modality_conflict_color", "attribute": "modality_conflict_attribute"}


def measure_resolution(
    work: Path, groups: int | None, workers: int, repeats: int, kind: str = "color"
) -> dict[str, Any]:
    """Time the resolver on an empty cache, then on the filled cache and on an explicit folder."""
    from modality_conflict.dataset_builder.builder import build_dataset
    from modality_conflict.dataset_builder.canonical import CANONICAL_BY_KIND
    from modality_conflict.dataset_builder.folder import DatasetFolder
    from modality_conflict.dataset_builder.resolve import ensure_dataset, resolve_data

    canonical = spec = CANONICAL_BY_KIND[kind]
    if groups is not None and groups != canonical.groups:
        reference = work / "reference"
        build_dataset(reference, groups=groups, dataset=kind, seed=canonical.seed, workers=workers)
        spec = dataclasses.replace(
            canonical, name="bench", groups=groups, fingerprint=DatasetFolder(reference).fingerprint
        )
    cache = work / "cache-resolution"
    started = time.perf_counter()
    first = ensure_dataset(spec, root=cache, workers=workers, log=_quiet)
    first_seconds = time.perf_counter() - started
    cached, explicit = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        assert ensure_dataset(spec, root=cache, workers=workers, log=_quiet).source == "cache"
        cached.append(time.perf_counter() - started)
        started = time.perf_counter()
        assert resolve_data(spec.fingerprint, data_dir=first.path, log=_quiet).source == "env"
        explicit.append(time.perf_counter() - started)
    size = sum(p.stat().st_size for p in first.path.rglob("*") if p.is_file())
    loads = measure_row_loading(first.path, first.fingerprint, work / "hf-datasets-cache", repeats)
    return {
        **loads,
        "groups": spec.groups,
        "workers": workers,
        "canonical": spec is canonical,
        "dataset": kind,
        "fingerprint_matches_pin": first.canonical,
        "dataset_mib": round(size / 2**20, 2),
        "first_run_seconds": round(first_seconds, 3),
        "cached_run_seconds_median": round(statistics.median(cached), 4),
        "cached_run_seconds_all": [round(s, 4) for s in cached],
        "explicit_folder_seconds_median": round(statistics.median(explicit), 4),
    }


def measure_row_loading(folder: Path, fingerprint: str, hf_cache: Path, repeats: int) -> dict[str, Any]:
    """What a task pays to get its rows: the verified read it uses (every shard read once, hashed, parsed
    from those bytes) beside ``datasets.load_dataset`` on the same folder (what lmms-eval would otherwise
    call; unverified, and its first call writes an Arrow cache)."""
    import datasets

    from modality_conflict.dataset_builder.folder import DatasetFolder

    verified, unverified = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        rows = DatasetFolder(folder).splits(fingerprint)["test"]
        verified.append(time.perf_counter() - started)
        started = time.perf_counter()
        plain = datasets.load_dataset(str(folder), split="test", cache_dir=str(hf_cache))
        unverified.append(time.perf_counter() - started)
        assert len(rows) == len(plain)
    return {
        "verified_row_load_seconds_median": round(statistics.median(verified), 4),
        "load_dataset_seconds_first": round(unverified[0], 4),
        "load_dataset_seconds_median_cached": round(statistics.median(unverified[1:] or unverified), 4),
    }


def _lmms_eval(model_dir: Path, output: Path, env: dict[str, str], task: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "lmms_eval", "--model", "modality_conflict_hf"]
    command += ["--model_args", f"pretrained={model_dir},device=cpu,device_map=cpu"]
    command += ["--tasks", task, "--limit", "1", "--output_path", str(output)]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - started
    (output.parent / f"{output.name}.log").write_text(done.stdout + "\n--- stderr ---\n" + done.stderr)
    if done.returncode != 0 or not list(output.rglob("*_results.json")):
        raise RuntimeError(
            f"lmms-eval failed (exit {done.returncode}); see {output.parent / output.name}.log"
        )
    ready = READY.search(done.stderr)
    return {
        "wall_seconds": round(seconds, 2),
        "source": ready.group(1) if ready else None,
        "resolution_seconds": float(ready.group(2)) if ready else None,
    }


def measure_lmms_eval(work: Path, workers: int, kind: str = "color") -> dict[str, Any]:
    """Three real lmms-eval runs: empty cache, filled cache, explicit folder."""
    model_dir = bench_common.ensure_tiny_llava(work / "tiny_llava")
    cache = work / "cache-lmms-eval"
    env = {**os.environ, **bench_common.OFFLINE_ENV, "OMP_NUM_THREADS": "1"}
    env.pop("MODALITY_CONFLICT_DATA", None)
    env |= {"MODALITY_CONFLICT_CACHE": str(cache), "MODALITY_CONFLICT_BUILD_WORKERS": str(workers)}
    task = TASKS[kind]
    runs = {"empty_cache": _lmms_eval(model_dir, work / "run-empty-cache", env, task)}
    runs["filled_cache"] = _lmms_eval(model_dir, work / "run-filled-cache", env, task)
    from modality_conflict.dataset_builder.canonical import CANONICAL_BY_KIND

    folder = cache / "datasets" / CANONICAL_BY_KIND[kind].cache_name
    runs["explicit_folder"] = _lmms_eval(
        model_dir, work / "run-explicit", {**env, "MODALITY_CONFLICT_DATA": str(folder)}, task
    )
    base = runs["explicit_folder"]["wall_seconds"]
    return {
        "runs": runs,
        "first_run_overhead_seconds": round(runs["empty_cache"]["wall_seconds"] - base, 2),
        "cached_run_overhead_seconds": round(runs["filled_cache"]["wall_seconds"] - base, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=None, help="a smaller set (default: the canonical one)")
    parser.add_argument(
        "--dataset", choices=sorted(TASKS), default="color", help="which pinned set (default color)"
    )
    parser.add_argument("--workers", type=int, default=2, help="build processes (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="cached resolutions timed (default 5)")
    parser.add_argument("--no-lmms-eval", action="store_true", help="time the resolver only")
    parser.add_argument("--out", type=Path, default=HERE / "results_data.json")
    parser.add_argument("--work", type=Path, help="folder for the caches and runs (default: temporary)")
    args = parser.parse_args(argv)
    bench_common.set_offline_env()
    machine = bench_common.machine_info()
    print("machine: " + bench_common.describe_machine(machine), flush=True)
    with tempfile.TemporaryDirectory(prefix="mc-bench-data-") as tmp:
        work = (args.work or Path(tmp)) / "data"
        work.mkdir(parents=True, exist_ok=True)
        report: dict[str, Any] = {"machine": machine}
        report["resolution"] = measure_resolution(work, args.groups, args.workers, args.repeats, args.dataset)
        r = report["resolution"]
        print(
            f"resolver, {r['groups']} groups ({r['dataset_mib']} MiB): first run (build, {r['workers']} "
            f"processes) {r['first_run_seconds']:.1f} s; cached run {r['cached_run_seconds_median']:.3f} s; "
            f"explicit folder {r['explicit_folder_seconds_median']:.3f} s; fingerprint matches the pin: "
            f"{str(r['fingerprint_matches_pin']).lower()}",
            flush=True,
        )
        print(
            f"rows for a task: verified read {r['verified_row_load_seconds_median']:.3f} s; "
            f"datasets.load_dataset (unverified) {r['load_dataset_seconds_first']:.3f} s first, "
            f"{r['load_dataset_seconds_median_cached']:.3f} s from its Arrow cache",
            flush=True,
        )
        if not args.no_lmms_eval:
            report["lmms_eval"] = measure_lmms_eval(work, args.workers, args.dataset)
            e = report["lmms_eval"]
            for name, run in e["runs"].items():
                print(
                    f"lmms-eval --limit 1, {name.replace('_', ' ')}: {run['wall_seconds']:.1f} s "
                    f"(data: {run['source']}, resolved in {run['resolution_seconds']} s)"
                )
            print(
                f"overhead against an explicit folder: first run {e['first_run_overhead_seconds']:+.1f} s, "
                f"cached run {e['cached_run_overhead_seconds']:+.1f} s"
            )
    bench_common.write_report(report, args.out)
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
