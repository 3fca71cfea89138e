"""Hugging Face Hub "Eval Results" files from one submission: ``eval.yaml`` for the benchmark dataset repo
(one Hub task per ranked metric) and ``.eval_results/<name>.yaml`` for the model repo.

The submission is verified as the leaderboard verifies it; with ``unverified=True`` the dataset check is
skipped and every entry and the file's header say plainly that the result is unverified.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modality_conflict.analysis.results import TaskSummary
from modality_conflict.analysis.submission import LOCAL_DATASET, verify_file
from modality_conflict.analysis.submission.coverage import task_process_docs
from modality_conflict.dataset_builder.atomic import ensure_folder, write_text_atomic
from modality_conflict.mc_tasks.names import MAIN_TASK, RANKED_METRICS


def hub_task_id(task: str, metric: str) -> str:
    """The Hub task id of one headline metric of one lmms-eval task."""
    return f"{task}-{metric}"


def eval_yaml(dataset_id: str, task: str, *, split: str = "test") -> dict[str, Any]:
    """The ``eval.yaml`` of the benchmark dataset repo: one Hub task (leaderboard) per ranked metric. The Hub
    accepts it once ``lmms-eval`` is on its list of ``evaluation_framework`` values (huggingface.js
    ``packages/tasks/src/eval.ts``).
    """
    return {
        "name": "Modality Conflict (colour)",
        "description": (
            "Image-text conflicts for multimodal LLMs (arXiv:2511.02243): a shape's colour in an image "
            "against a text that claims another colour, at graded visual and textual difficulty. Each model "
            "answers the "
            "image alone, the text alone and both; the leaderboards give its balance point (the relative "
            "uncertainty at which it follows text and image equally often), its text-following rate and its "
            f"mean unimodal entropies. Run with lmms-eval (`--tasks {task}`) and checked with "
            "`modality-conflict verify`."
        ),
        "evaluation_framework": "lmms-eval",
        "tasks": [
            {"id": hub_task_id(task, metric), "config": "default", "split": split}
            for metric in RANKED_METRICS
        ],
    }


HUB_EVAL_RESULTS_VERSION = "2.4"
"""The huggingface_hub release the Hub eval-results files are written and tested with."""


def _hub_eval_results_api() -> Any:
    """huggingface_hub, once it is known to have the eval-results API (transformers 4.x pins an older one)."""
    import huggingface_hub

    if getattr(huggingface_hub, "EvalResultEntry", None) is None:
        raise RuntimeError(
            f"eval-results needs huggingface_hub >= {HUB_EVAL_RESULTS_VERSION} (its EvalResultEntry API); "
            f"this environment has {huggingface_hub.__version__} "
            "(transformers 4.x requires huggingface_hub < 1.0)"
        )
    return huggingface_hub


def eval_result_entries(
    submission: Mapping[str, Any],
    *,
    dataset_id: str,
    source_url: str | None = None,
    source_name: str | None = None,
    verified: bool = True,
) -> tuple[list[Any], list[str]]:
    """``huggingface_hub.EvalResultEntry`` objects for a submission's ranked metrics (their notes say whether
    it was ``verified``), and one line per metric left out as undefined."""
    EvalResultEntry = _hub_eval_results_api().EvalResultEntry  # noqa: N806 - the class, as imported

    summary = TaskSummary(submission["metrics"])
    task = submission["task"]["name"]
    version = str(submission["analysis"].get("package_version", "unknown"))
    entries, skipped = [], []
    for key in RANKED_METRICS:
        value = summary.number(key)
        if value is None:
            reason = summary.why_undefined(key) or "undefined"
            skipped.append(f"{key}: not reported ({reason})")
            continue
        notes = [f"entropy estimator {submission['estimator']}", f"{summary.n_conflicts} conflicts"]
        low, high = summary.interval(key)
        if low is not None and high is not None:
            method = summary.interval_method(key) or ("wilson" if key == "tfr" else "delta")
            notes.insert(0, f"95% CI [{low:.4f}, {high:.4f}] ({method})")
        notes.append(
            f"verified with modality-conflict {version}"
            if verified
            else "UNVERIFIED: not checked against the dataset"
        )
        entries.append(
            EvalResultEntry(
                dataset_id=dataset_id,
                task_id=hub_task_id(task, key),
                value=round(value, 6),
                dataset_revision=submission["dataset"].get("revision"),
                date=submission["created"],
                source_url=source_url,
                source_name=source_name if source_url else None,
                notes="; ".join(notes),
            )
        )
    return entries, skipped


def write_eval_results(
    submission_path: Path,
    out: Path,
    *,
    data: Path | None = None,
    dataset_id: str | None = None,
    source_url: str | None = None,
    source_name: str | None = None,
    unverified: bool = False,
) -> tuple[Path, Path, list[str]]:
    """Verify a submission against ``data`` (default: the pinned dataset; none when ``unverified``), then
    write ``out/eval.yaml`` and ``out/.eval_results/<name>.yaml``; returns both paths and the metrics left
    out. A ``ValueError`` when no Hub dataset id is known or the pinned dataset cannot be had."""
    import yaml

    eval_result_entries_to_yaml = _hub_eval_results_api().eval_result_entries_to_yaml

    from modality_conflict.analysis.leaderboard import reference_dataset

    if not unverified and data is None:
        data = reference_dataset()
    verification = verify_file(Path(submission_path), data=None if unverified else data)
    submission = verification.submission
    dataset_id = dataset_id or submission["dataset"]["repo"]
    if dataset_id == LOCAL_DATASET or "/" not in dataset_id:
        raise ValueError(
            f"the submission names no Hub dataset (dataset.repo is {submission['dataset']['repo']!r}); "
            "pass --dataset-id"
        )
    task = submission["task"]["name"]
    if task not in task_process_docs():  # it names files and Hub task ids: only this package's tasks
        raise ValueError(f"task.name {task!r} is not a modality_conflict task of this package")
    sources = {"source_url": source_url, "source_name": source_name}
    entries, skipped = eval_result_entries(
        submission, dataset_id=dataset_id, verified=not unverified, **sources
    )
    if not entries:
        raise ValueError("the submission reports none of the headline metrics: " + "; ".join(skipped))
    out = Path(out)
    ensure_folder(out / ".eval_results")
    header = (
        "# Benchmark definition for the Hugging Face Hub (https://huggingface.co/docs/hub/eval-results).\n"
        "# `lmms-eval` must be on the Hub's list of evaluation frameworks before the Hub accepts this file.\n"
    )
    eval_path = out / "eval.yaml"
    benchmark = eval_yaml(dataset_id, task, split=submission["dataset"]["split"])
    write_text_atomic(eval_path, header + yaml.safe_dump(benchmark, sort_keys=False))
    name = dataset_id.split("/")[-1] + ("" if task == MAIN_TASK else f"_{task}")
    result_path = out / ".eval_results" / f"{name}.yaml"
    checked = (
        "UNVERIFIED: the submission was not checked against the dataset.\n"
        if unverified
        else "from a submission verified against the dataset by `modality-conflict verify`.\n"
    )
    results = yaml.safe_dump(eval_result_entries_to_yaml(entries), sort_keys=False)
    write_text_atomic(result_path, f"# {submission['model']['id']} on {dataset_id}, {checked}{results}")
    return eval_path, result_path, skipped
