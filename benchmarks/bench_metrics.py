"""Time the whole metrics report on 100,000 synthetic items with 2,000 cluster-bootstrap resamples.

Usage::

    python benchmarks/bench_metrics.py [--groups 2000] [--resamples 2000] [--repeats 3] [--out FILE]

Prints the wall time of ``summarize(...).to_dict()`` (best and median of the repeats; building the items
is timed separately) and writes the figures as JSON (default ``benchmarks/results_metrics.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from modality_conflict.dataset_builder.constants import COLORS
from modality_conflict.metrics import simulate_items, summarize

TARGET_SECONDS = 2.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--groups", type=int, default=2000, help="item groups (42 main + 8 control items each)"
    )
    parser.add_argument("--resamples", type=int, default=2000, help="cluster bootstrap resamples")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).with_name("results_metrics.json"), help="JSON output file"
    )
    args = parser.parse_args(argv)

    start = time.perf_counter()
    # 14 visual x 3 text tiers per group, plus each control type at 4 visual tiers: 50 items per group.
    items = simulate_items(
        candidates=COLORS,
        n_groups=args.groups,
        control_tiers=(0, 4, 8, 12),
        balance=0.3,
        slope=-4.0,
        group_sd=0.3,
        rng=args.seed,
    )
    build_seconds = time.perf_counter() - start

    timings = []
    report: dict = {}
    for repeat in range(args.repeats):
        start = time.perf_counter()
        report = summarize(items, n_resamples=args.resamples, rng=args.seed + repeat).to_dict()
        timings.append(time.perf_counter() - start)

    result = {
        "n_items": len(items),
        "n_groups": args.groups,
        "n_resamples": args.resamples,
        "repeats": args.repeats,
        "summarize_seconds_best": min(timings),
        "summarize_seconds_median": statistics.median(timings),
        "summarize_seconds_all": timings,
        "build_items_seconds": build_seconds,
        "target_seconds": TARGET_SECONDS,
        "within_target": min(timings) < TARGET_SECONDS,
        "balance_point": report["balance_point"],
        "balance_point_bootstrap_low": report["balance_point_bootstrap_low"],
        "balance_point_bootstrap_high": report["balance_point_bootstrap_high"],
        "planted_balance_point": 0.3,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "platform": platform.platform(),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"summarize on {len(items):,} items, {args.resamples:,} resamples: best {min(timings):.3f} s, "
        f"median {statistics.median(timings):.3f} s over {args.repeats} runs "
        f"(target < {TARGET_SECONDS:.0f} s); "
        f"building the items took {build_seconds:.3f} s"
    )
    print(
        f"balance point {report['balance_point']:.4f} (planted 0.3), bootstrap 95% "
        f"[{report['balance_point_bootstrap_low']:.4f}, {report['balance_point_bootstrap_high']:.4f}]"
    )
    print(f"wrote {args.out}")
    return 0 if result["within_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
