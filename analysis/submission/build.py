"""Building a submission from an lmms-eval run: provenance, the task's summary, and its per-doc records.

One JSON file (``submission.schema.json``) holds where the result came from (model, dataset, task, lmms-eval
versions, estimator, each output file's name and sha256), the summary as the run recorded it and the records
(without lens data). It is made only once the records reproduce the summary, and a dataset folder gives its
fingerprint only when its files match its manifest.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from modality_conflict.analysis.results import TaskResult
from modality_conflict.analysis.submission.claims import claim_problems
from modality_conflict.analysis.submission.schema import FORMAT, SCHEMA_VERSION, schema_problems
from modality_conflict.analysis.submission.verify import compare_values, json_normal
from modality_conflict.dataset_builder.atomic import write_text_atomic
from modality_conflict.dataset_builder.folder import (
    DatasetFolder,
    DatasetFolderError,
    dataset_fingerprint,
    sha256_file,
)
from modality_conflict.mc_tasks.records import N_RESAMPLES, REPORT_SEED, summarize_records

LOCAL_DATASET = "local"
RECORD_DROP = ("lens",)  # per-layer data stays in the sample logs: large and not needed to recompute


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def parse_model_args(model_args: object) -> dict[str, str]:
    """``key=value,key=value`` (lmms-eval's --model_args) as a dict; a dict is passed through."""
    if isinstance(model_args, dict):
        return {str(k): str(v) for k, v in model_args.items()}
    out: dict[str, str] = {}
    for part in str(model_args or "").split(","):
        key, sep, value = part.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def checked_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a dataset folder whose files match it (sizes first, then sha256): a modified copy must
    not carry the original's fingerprint."""
    dataset = DatasetFolder(Path(folder))
    if dataset.manifest is None:
        raise FileNotFoundError(
            f"{folder} has no readable manifest.json (not made by `modality-conflict build`)"
        )
    try:
        dataset.verify_hashes()
    except DatasetFolderError as error:
        raise ValueError(
            f"{error}; a submission records the fingerprint only of an unmodified folder"
        ) from None
    return dataset.manifest


def run_files(run: TaskResult) -> dict[str, Any]:
    """The ``run`` section: name and sha256 of the results file, the sample log and the report file."""
    assert run.samples_jsonl is not None
    report = run.report_json
    return {
        "results_file": run.results_json.name,
        "results_sha256": sha256_file(run.results_json),
        "samples_file": run.samples_jsonl.name,
        "samples_sha256": sha256_file(run.samples_jsonl),
        "report_file": None if report is None else report.name,
        "report_sha256": None if report is None else sha256_file(report),
    }


def build_submission(
    run: TaskResult,
    *,
    model_id: str | None = None,
    model_revision: str | None = None,
    dataset_repo: str | None = None,
    dataset_revision: str | None = None,
    data_dir: Path | None = None,
    created: str | None = None,
) -> dict[str, Any]:
    """A submission for one task run (with its records), after checking that they reproduce its report:
    ``model_id``/``model_revision`` override ``--model_args``' ``pretrained=``/``revision=``;
    ``dataset_repo``/``dataset_revision`` the task's Hub source (a local folder published as that revision);
    ``data_dir`` gives the fingerprint (found when the run's ``dataset_path`` is a local build). A
    ``ValueError`` when the report is undefined or not reproduced, the folder differs from its manifest, or
    the dataset claimed is not the run's ``metadata.dataset_used`` (:func:`~.claims.claim_problems`).
    """
    if not run.records:
        raise ValueError(
            f"{run.results_json}: task {run.task!r} has no per-sample records (run with --log_samples)"
        )
    if not run.summary.ok:
        raise ValueError(
            f"task {run.task!r}: the report is undefined ({run.summary.get('reason', 'no reason given')})"
        )
    records = sorted(
        ({k: v for k, v in record.items() if k not in RECORD_DROP} for record in run.records),
        key=lambda r: str(r["row_id"]),
    )
    recomputed = json_normal(summarize_records(records))
    differences = compare_values(run.summary.raw, recomputed)
    if differences:
        raise ValueError(
            f"{run.results_json}: the sample log does not reproduce the task's report "
            "(are they from the same run?):\n" + "\n".join(f"  - {d}" for d in differences[:10])
        )

    results = run.results_file
    config = results.config
    args = parse_model_args(results.model_args)
    task_config = run.task_config
    dataset_path = str(task_config.get("dataset_path") or "")
    kwargs = task_config.get("dataset_kwargs") if isinstance(task_config.get("dataset_kwargs"), dict) else {}
    manifest = None
    if data_dir is not None:
        manifest = checked_manifest(Path(data_dir))
    elif dataset_path and Path(dataset_path).is_dir() and DatasetFolder(Path(dataset_path)).manifest:
        manifest = checked_manifest(Path(dataset_path))
    is_local_path = bool(dataset_path) and (Path(dataset_path).is_absolute() or Path(dataset_path).exists())
    version = results.task_version(run.task)
    model_name = results.data.get("model_name")
    submission = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "created": created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": {
            "id": model_id or str(model_name or args.get("pretrained") or config.get("model") or "unknown"),
            "revision": model_revision or args.get("revision") or None,
            "lmms_eval_model": str(config.get("model") or "unknown"),
            "model_args": str(config.get("model_args") or "")[:2000],
        },
        "dataset": {
            "repo": dataset_repo or (LOCAL_DATASET if is_local_path or not dataset_path else dataset_path),
            "revision": dataset_revision or (None if is_local_path else kwargs.get("revision")),
            "split": str(task_config.get("test_split") or "test"),
            "fingerprint": dataset_fingerprint(manifest) if manifest else None,
            "builder_version": manifest.get("builder_version") if manifest else None,
        },
        "task": {
            "name": run.task,
            "version": version
            if isinstance(version, (str, int, float)) and not isinstance(version, bool)
            else None,
            "output_type": task_config.get("output_type"),
        },
        "lmms_eval": {
            "version": _package_version("lmms_eval"),
            "reported_version": results.data.get("lmms_eval_version"),
            "git_hash": results.data.get("git_hash"),
        },
        "run": run_files(run),
        "estimator": str(recomputed.get("entropy_estimator")),
        "analysis": {
            "package_version": _package_version("modality-conflict") or "unknown",
            "n_resamples": N_RESAMPLES,
            "seed": REPORT_SEED,
        },
        "metrics": run.summary.raw,
        "records": records,
    }
    claims = claim_problems(submission["dataset"], task_config)
    if claims:
        raise ValueError(
            f"{run.results_json}: the dataset claimed does not match the data the run read:\n"
            + "\n".join(f"  - {p}" for p in claims)
        )
    problems = schema_problems(submission)
    if problems:
        raise ValueError(
            "the submission would not follow its own schema:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return submission


def write_submission(submission: Mapping[str, Any], path: Path) -> Path:
    """Write a submission as compact, key-sorted JSON (one record per line for readable diffs)."""
    path = Path(path)
    head = {k: v for k, v in submission.items() if k != "records"}
    body = json.dumps(head, sort_keys=True, indent=1, allow_nan=False)[:-2]
    lines = ",\n".join(json.dumps(r, sort_keys=True, allow_nan=False) for r in submission["records"])
    return write_text_atomic(path, f'{body},\n "records": [\n{lines}\n]\n}}\n')
