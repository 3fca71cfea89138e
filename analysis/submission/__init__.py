"""Leaderboard submissions: building one from an lmms-eval run, reading it strictly, verifying it.

Modules: :mod:`~.strict_json` (untrusted JSON), :mod:`~.schema` (the format and its JSON Schema),
:mod:`~.build` (from a run to a submission file), :mod:`~.consistency` (each record against itself),
:mod:`~.coverage` (the task's split), :mod:`~.verify` (recomputation, the dataset and the run checks).
"""

from modality_conflict.analysis.submission.build import LOCAL_DATASET, build_submission, write_submission
from modality_conflict.analysis.submission.consistency import record_inconsistency
from modality_conflict.analysis.submission.coverage import Coverage
from modality_conflict.analysis.submission.schema import (
    MAX_SUBMISSION_BYTES,
    SCHEMA_PATH,
    load_schema,
    load_submission,
    schema_problems,
)
from modality_conflict.analysis.submission.strict_json import SubmissionError
from modality_conflict.analysis.submission.verify import (
    DatasetIndex,
    RejectedSubmissionError,
    Verification,
    json_normal,
    load_dataset_index,
    verify_file,
    verify_submission,
)
from modality_conflict.dataset_builder.folder import dataset_fingerprint

__all__ = [
    "LOCAL_DATASET",
    "MAX_SUBMISSION_BYTES",
    "SCHEMA_PATH",
    "Coverage",
    "DatasetIndex",
    "RejectedSubmissionError",
    "SubmissionError",
    "Verification",
    "build_submission",
    "dataset_fingerprint",
    "json_normal",
    "load_dataset_index",
    "load_schema",
    "load_submission",
    "record_inconsistency",
    "schema_problems",
    "verify_file",
    "verify_submission",
    "write_submission",
]
