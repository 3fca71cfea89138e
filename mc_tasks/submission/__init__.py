"""Leaderboard submissions: building one from an lmms-eval run, reading it strictly, verifying it.

Modules: :mod:`~.strict_json` (untrusted JSON), :mod:`~.schema` (the format and its JSON Schema),
:mod:`~.build` (from a run to a submission file), :mod:`~.verify` (recomputation and the dataset check).
The command line is :mod:`modality_conflict.mc_tasks.commands.submit`; the leaderboard that lists verified
submissions is :mod:`modality_conflict.mc_tasks.leaderboard`.
"""

from modality_conflict.dataset_builder.folder import dataset_fingerprint
from modality_conflict.mc_tasks.submission.build import (
    LOCAL_DATASET,
    build_submission,
    parse_model_args,
    write_submission,
)
from modality_conflict.mc_tasks.submission.schema import (
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
from modality_conflict.mc_tasks.submission.strict_json import MAX_NESTING, SubmissionError, parse_strict_json
from modality_conflict.mc_tasks.submission.verify import (
    TRUTH_FIELDS,
    DatasetIndex,
    RejectedSubmissionError,
    Verification,
    compare_values,
    dataset_problems,
    json_normal,
    load_dataset_index,
    verify_file,
    verify_submission,
)

__all__ = [
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
    "compare_values",
    "dataset_fingerprint",
    "dataset_problems",
    "json_normal",
    "load_dataset_index",
    "load_schema",
    "load_submission",
    "parse_model_args",
    "parse_strict_json",
    "read_submission_file",
    "schema_problems",
    "verify_file",
    "verify_submission",
    "write_submission",
]
