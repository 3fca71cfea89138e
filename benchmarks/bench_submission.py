"""Time the submission reader on adversarial and well-formed inputs: every check must be linear.

Usage::

    python benchmarks/bench_submission.py [--max-mb 8] [--repeats 3] [--out FILE]

For each adversarial shape (an unterminated string of escaped quotes, runs of backslashes before quotes,
deep brackets, deep objects, unicode escapes) and each size from 32 KiB up to ``--max-mb``, it times
``load_submission`` (size cap, linear nesting scan, strict parse, schema) until the file is rejected, and
the nesting scan alone; for a well-formed file of records it times the scan and the parse. The regex the
scan replaced is timed on 4 to 16 KiB only (it is quadratic: seconds at 16 KiB). Prints a table and
writes the figures as JSON (default ``benchmarks/results_submission.json``).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import bench_common

from modality_conflict.analysis.json_input import nesting_depth
from modality_conflict.analysis.submission import SubmissionError, load_submission

KIB = 1024
TARGET_SECONDS_PER_MB = 1.0  # the goal: a 1 MB adversarial file is rejected in well under a second
_OLD_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)  # what the scan replaced


def adversarial(shape: str, size: int) -> bytes:
    """``size`` bytes (about) of one adversarial shape."""
    if shape == "escaped_quotes":
        return b'"' + b'\\"' * (size // 2)
    if shape == "backslash_runs":
        return b'["' + b'\\\\\\"' * (size // 4) + b'"]'
    if shape == "brackets":
        return b"[" * size
    if shape == "objects":
        n = size // 6
        return b'{"a":' * n + b"1" + b"}" * n
    if shape == "unicode_escapes":
        return b'"\\u' * (size // 3)
    raise ValueError(shape)


SHAPES = ("escaped_quotes", "backslash_runs", "brackets", "objects", "unicode_escapes")


def well_formed(size: int) -> bytes:
    """A JSON object with a list of submission-like records, about ``size`` bytes."""
    record = {
        "row_id": "g0001-v03-t1-none",
        "condition": "conflict",
        "answer": "red",
        "raw_response": 'Red, "clearly".',
        "entropy": 0.123456789,
        "answer_scores": [-0.1, -3.2, -4.5, -5.0, -6.1, -7.7],
    }
    line = json.dumps(record).encode()
    count = max(1, size // (len(line) + 2))
    return b'{"records": [' + b", ".join([line] * count) + b"]}"


def best_of(repeats: int, function: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def old_depth(data: bytes) -> int:
    import numpy as np

    blanked = _OLD_STRING.sub('""', data.decode("utf-8")).encode()
    codes = np.frombuffer(blanked, dtype=np.uint8)
    steps = np.isin(codes, (91, 123)).astype(np.int32) - np.isin(codes, (93, 125)).astype(np.int32)
    return int(np.cumsum(steps).max(initial=0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-mb", type=float, default=8.0, help="largest input, in MiB")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).with_name("results_submission.json"), help="JSON output"
    )
    args = parser.parse_args(argv)
    sizes = [32 * KIB, 128 * KIB, 1024 * KIB]
    sizes += [int(mb * 1024 * KIB) for mb in (8, 32, 50) if mb <= args.max_mb]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "submission.json"
        for shape in SHAPES:
            for size in sizes:
                data = adversarial(shape, size)
                path.write_bytes(data)

                def reject(shape: str = shape) -> None:
                    try:
                        load_submission(path)
                    except SubmissionError:
                        return
                    raise AssertionError(f"{shape} was accepted")

                row = {
                    "input": shape,
                    "bytes": len(data),
                    "load_submission_s": best_of(args.repeats, reject),
                    "nesting_scan_s": best_of(args.repeats, lambda data=data: nesting_depth(data)),
                }
                rows.append(row)
        for size in (4 * KIB, 8 * KIB, 16 * KIB):  # the replaced regex: quadratic, so small sizes only
            data = adversarial("escaped_quotes", size)
            rows.append(
                {
                    "input": "escaped_quotes, replaced regex",
                    "bytes": len(data),
                    "nesting_scan_s": best_of(1, lambda data=data: old_depth(data)),
                }
            )
        for size in sizes:
            data = well_formed(size)
            rows.append(
                {
                    "input": "well_formed_records",
                    "bytes": len(data),
                    "nesting_scan_s": best_of(args.repeats, lambda data=data: nesting_depth(data)),
                    "json_parse_s": best_of(args.repeats, lambda data=data: json.loads(data)),
                }
            )
    one_mb = [r for r in rows if "load_submission_s" in r and 1000 * KIB <= r["bytes"] <= 1100 * KIB]
    worst = max(one_mb, key=lambda r: r["load_submission_s"])
    per_mb = [r["load_submission_s"] / (r["bytes"] / 2**20) for r in rows if "load_submission_s" in r]
    summary = {
        "worst_1mb_input": worst["input"],
        "worst_1mb_seconds": worst["load_submission_s"],
        "goal_seconds_per_mb": TARGET_SECONDS_PER_MB,
        "meets_goal": worst["load_submission_s"] < TARGET_SECONDS_PER_MB,
        "median_seconds_per_mb": statistics.median(per_mb),
        "inputs_tried": sum(1 for r in rows if "load_submission_s" in r),
    }
    print(f"{'input':32} {'bytes':>10} {'load (s)':>9} {'scan (s)':>9} {'other (s)':>10}")
    for row in rows:
        other = row.get("json_parse_s")
        print(
            f"{row['input']:32} {row['bytes']:>10} {row.get('load_submission_s', float('nan')):>9.4f} "
            f"{row['nesting_scan_s']:>9.4f} {'' if other is None else format(other, '10.4f'):>10}"
        )
    print(
        f"worst 1 MiB adversarial input: {summary['worst_1mb_input']}, rejected in "
        f"{summary['worst_1mb_seconds']:.3f} s (goal < {TARGET_SECONDS_PER_MB} s)"
    )
    report = {"machine": bench_common.machine_info(), "summary": summary, "rows": rows}
    bench_common.write_report(report, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
