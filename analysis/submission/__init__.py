"""Leaderboard submissions: building one from an lmms-eval run, reading it strictly, verifying it.

Modules: :mod:`~.strict_json` (untrusted JSON), :mod:`~.schema` (the format and its JSON Schema),
:mod:`~.build` (from a run to a submission file), :mod:`~.consistency` (each record against itself),
:mod:`~.coverage` (the task's split), :mod:`~.verify` (recomputation, the dataset and the run checks).
The command line is :mod:`modality_conflict.cli.submit`; the leaderboard that lists verified
submissions is :mod:`modality_conflict.analysis.leaderboard`.
"""

from modality_conflict.analysis.submission.build import (
    LOCAL_DATASET,
    build_submission,
    checked_manifest,
    parse_model_args,
    run_files,
    write_submission,
)
from modality_conflict.analysis.submission.consistency import consistency_problems, record_inconsistency
from modality_conflict.analysis.submission.coverage import Coverage, coverage_of, split_row_ids
from modality_conflict.analysis.submission.schema import (
    FORMAT,
    MAX_RECORDS,
    MAX_SUBMISSION_BYTES,
    SCHEMA_PATH,
    SCHEMA_VERSION,
    load_schema,
    load_submission,
    read_submission_file,
    schema_problems,
)
from modality_conflict.analysis.submission.strict_json import MAX_NESTING, SubmissionError, parse_strict_json
from modality_conflict.analysis.submission.verify import (
    TRUTH_FIELDS,
    DatasetIndex,
    RejectedSubmissionError,
    Verification,
    compare_values,
    dataset_problems,
    json_normal,
    load_dataset_index,
    run_problems,
    split_problems,
    task_split,
    verify_file,
    verify_submission,
)
from modality_conflict.dataset_builder.folder import dataset_fingerprint

__all__ = [
    "Coverage",
    "FORMAT",
    "LOCAL_DATASET",
    "MAX_NESTING",
    "MAX_RECORDS",
    "MAX_SUBMISSION_BYTES",
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "TRUTH_FIELDS",
    "DatasetIndex",
    "RejectedSubmissionError",
    "SubmissionError",
    "Verification",
    "build_submission",
    "checked_manifest",
    "compare_values",
    "consistency_problems",
    "coverage_of",
    "dataset_fingerprint",
    "dataset_problems",
    "json_normal",
    "load_dataset_index",
    "load_schema",
    "load_submission",
    "parse_model_args",
    "parse_strict_json",
    "read_submission_file",
    "record_inconsistency",
    "run_files",
    "run_problems",
    "schema_problems",
    "split_problems",
    "split_row_ids",
    "task_split",
    "verify_file",
    "verify_submission",
    "write_submission",
]
