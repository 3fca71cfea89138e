"""lmms-eval's own wrappers on the benchmark, each in its own ``lmms-eval`` process, as the matrix says.

Every wrapper entry of the support matrix's last column is run on its tiny checkpoint with the first 20 rows
of the quick dataset (14 vision-only, then 3 text-only and 3 conflict rows) and the task's own YAML
settings:

- *supported*: ``modality_conflict_sampled`` gives all K answers of every document, and each entropy is the
  Miller-Madow entropy of the logged answers (not the same for every document);
- *broken upstream*: the run fails, and the traceback lmms-eval prints ends in exactly the exception the
  matrix names (type, message, and the upstream file and function that raised it), so a failure of the
  project's own code, or another upstream failure, does not pass for it;
- *missing dependency*: the wrapper's import stops at the package the matrix names.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import support_matrix
from lmms_eval_runs import (
    RaisedError,
    assert_sampled_entropy_is_that_of_the_logged_answers,
    launch_lmms_eval,
    raised_errors,
)

from modality_conflict.analysis.evaluate import EvaluationFailedError, find_run_outputs

pytestmark = pytest.mark.slow

LIMIT = 20
SAMPLED, LOGLIK = "modality_conflict_sampled", "modality_conflict_loglik"
REPEATS = 8  # modality_conflict_sampled.yaml
STOCK = list(support_matrix.lmms_eval_runs())


def _task(entry: dict[str, Any]) -> str:
    return LOGLIK if entry.get("task") == "loglik" else SAMPLED


def _run(tmp_path: Path, entry: dict[str, Any], folder: Path, data_dir: Path) -> str:
    """One lmms-eval process for a matrix entry; its log."""
    # lmms-eval's wrappers default to CUDA, and some to an empty device_map, which transformers refuses.
    options = (f"pretrained={folder}", "device=cpu", "device_map=cpu", entry.get("model_args"))
    model_args = ",".join(p for p in options if p)
    arguments = ["--model", entry["wrapper"], "--model_args", model_args, "--tasks", _task(entry)]
    cli = entry.get("cli", [])
    arguments += [] if "--batch_size" in cli else ["--batch_size", "1"]
    arguments += ["--limit", str(LIMIT), "--output_path", str(tmp_path), "--log_samples", *cli]
    return launch_lmms_eval(tmp_path, arguments, data_dir=data_dir).stderr


def _describe(errors: list[RaisedError]) -> str:
    if not errors:
        return "no traceback in the log"
    last = errors[-1]
    where = f"{last.frames[-1][0]}:{last.frames[-1][1]}" if last.frames else "?"
    return f"{last.type}: {last.message[:300]} (raised in {where})"


def matches_signature(error: RaisedError, entry: dict[str, Any]) -> bool:
    """Whether ``error`` is the failure a matrix entry names: type, message and raising place."""
    if error.type != entry["exception"] or not re.search(entry["message"], error.message):
        return False
    file, function = error.frames[-1] if error.frames else ("", "")
    return file.replace("\\", "/").endswith(entry["raised_in"]) and function == entry["function"]


@pytest.mark.parametrize(
    ("arch", "index", "entry"), STOCK, ids=[f"{e['wrapper']}-{a}-{i}" for a, i, e in STOCK]
)
def test_lmms_eval_wrapper_does_what_the_matrix_says(
    arch: str,
    index: int,
    entry: dict[str, Any],
    tmp_path: Path,
    quick_dataset_dir: Path,
    tiny_checkpoints: Any,
) -> None:
    log = _run(tmp_path, entry, tiny_checkpoints[arch], quick_dataset_dir)
    task = _task(entry)
    if entry["status"] == "supported":
        outputs = find_run_outputs(tmp_path, [task])
        assert_sampled_entropy_is_that_of_the_logged_answers(outputs, task, n_docs=LIMIT, repeats=REPEATS)
        return
    with pytest.raises(EvaluationFailedError):
        find_run_outputs(tmp_path, [task])
    errors = raised_errors(log)
    assert errors and matches_signature(errors[-1], entry), (
        f"{tmp_path / 'lmms_eval.log'}: expected {entry['exception']}: {entry['message']} raised in "
        f"{entry['raised_in']}:{entry['function']}; the run ended with {_describe(errors)}"
    )
