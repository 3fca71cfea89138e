"""Time and memory of building a conflict set (colour or attribute), for several worker counts.

Each configuration runs in a fresh child process so that peak memory figures do not carry over:

- ``peak_rss_parent_mib``: peak resident set of the building process (``RUSAGE_SELF``);
- ``peak_rss_worker_mib``: largest peak among its worker processes (``RUSAGE_CHILDREN``);
- ``peak_rss_tree_mib``: largest sum of the resident sets of the process and its workers, sampled every
  50 ms with psutil (when installed): the memory the build actually held at once.

Images per second count the distinct images drawn (one per group and visual tier) and the image cells
written (rows that carry an image; rows of a group share their images). ``cpu_seconds`` adds the user and
system time of the building process and its workers: on a shared machine it is the steadier figure, and
the load average before and after each run says how shared it was.

Usage::

    python benchmarks/bench_build.py [--dataset color] [--groups 400] [--workers 1 2] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _child(dataset: str, groups: int, workers: int, seed: int, dest: Path) -> None:
    from modality_conflict.dataset_builder.builder import build_dataset

    result = build_dataset(dest, dataset=dataset, groups=groups, seed=seed, workers=workers)
    # ru_maxrss is in KiB on Linux.
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    parent = own.ru_maxrss / 1024
    worker = children.ru_maxrss / 1024
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    print(
        json.dumps(
            {
                "seconds": result.seconds,
                "cpu_seconds": round(cpu, 1),
                "num_rows": result.num_rows,
                "num_rendered": result.num_rendered,
                "num_image_cells": result.num_image_cells,
                "peak_rss_parent_mib": round(parent, 1),
                "peak_rss_worker_mib": round(worker, 1) if workers > 1 else None,
            }
        )
    )


def _tree_rss(pid: int) -> float | None:
    try:
        import psutil
    except ImportError:
        return None
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
        total = 0
        for p in procs:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total / 2**20
    except psutil.Error:
        return None


def _run_config(dataset: str, groups: int, workers: int, seed: int, dest: Path) -> dict:
    load_before = os.getloadavg()[0]
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--dataset",
        dataset,
        "--groups",
        str(groups),
        "--workers",
        str(workers),
        "--seed",
        str(seed),
        "--dest",
        str(dest),
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_tree = None
    while proc.poll() is None:
        rss = _tree_rss(proc.pid)
        if rss is not None:
            peak_tree = max(peak_tree or 0.0, rss)
        time.sleep(0.05)
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"build with {workers} worker(s) failed:\n{err}")
    stats = json.loads(out.strip().splitlines()[-1])
    build_seconds = float(stats.pop("seconds"))  # measured inside the child: no interpreter start-up
    files = sorted(p for p in dest.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in files)
    stats.update(
        workers=workers,
        build_seconds=round(build_seconds, 2),
        process_wall_seconds=round(wall, 2),
        peak_rss_tree_mib=None if peak_tree is None else round(peak_tree, 1),
        images_drawn_per_second=round(stats["num_rendered"] / build_seconds, 1),
        image_cells_per_second=round(stats["num_image_cells"] / build_seconds, 1),
        dataset_bytes=size,
        dataset_mib=round(size / 2**20, 2),
        load_average_before=round(load_before, 2),
        load_average_after=round(os.getloadavg()[0], 2),
        files={p.relative_to(dest).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files},
    )
    return stats


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="color", choices=["color", "attribute"], help="which set")
    parser.add_argument("--groups", type=int, default=400, help="groups to build (paper: 400)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="JSON report path (default per dataset)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the builds in this folder")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dest", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.dataset, args.groups, args.workers[0], args.seed, args.dest)
        return 0
    if args.out is None:
        suffix = "" if args.dataset == "color" else f"_{args.dataset}"
        args.out = HERE / f"results_build{suffix}.json"

    runs = []
    with contextlib.ExitStack() as stack:
        tmp = args.keep or stack.enter_context(tempfile.TemporaryDirectory(prefix="mc-bench-"))
        for workers in args.workers:
            stats = _run_config(args.dataset, args.groups, workers, args.seed, Path(tmp) / f"w{workers}")
            runs.append(stats)
            s = stats
            print(
                f"{args.dataset} workers={workers}: {s['build_seconds']:.1f} s build, "
                f"{s['cpu_seconds']} s CPU "
                f"({s['process_wall_seconds']:.1f} s with start-up), "
                f"{s['images_drawn_per_second']:.0f} images drawn/s, "
                f"{s['image_cells_per_second']:.0f} image rows/s, "
                f"peak RSS parent {s['peak_rss_parent_mib']} MiB, worker {s['peak_rss_worker_mib']} MiB, "
                f"tree {s['peak_rss_tree_mib']} MiB; {s['num_rows']} rows, {s['dataset_mib']} MiB",
                flush=True,
            )
    identical = len({json.dumps(r["files"], sort_keys=True) for r in runs}) == 1
    report = {
        "benchmark": "build",
        "dataset": args.dataset,
        "groups": args.groups,
        "seed": args.seed,
        "outputs_identical_across_worker_counts": identical,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"outputs identical across worker counts: {identical}; report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
