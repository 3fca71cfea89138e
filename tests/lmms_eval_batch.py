"""Several lmms-eval CLI runs in one Python process: ``python lmms_eval_batch.py RUNS.json``.

``RUNS.json`` is a list of ``{"argv": [...], "log": PATH}``. Each run is what ``lmms-eval ARGV...`` does
(the CLI's own ``cli_evaluate`` on that command line), with its output going to its own log file; a run
that fails does not stop the next one. Paying the start-up of lmms-eval and transformers once keeps a
matrix of runs affordable; so does indexing lmms-eval's task folders once (every run's ``TaskManager``
would walk the same files again). What each run wrote is checked by the caller, as for a single run (the
CLI reports a failed evaluation in its log, not in its exit status).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import sys
import traceback
from pathlib import Path
from typing import Any


def index_tasks_once() -> None:
    """Memoise ``TaskManager.initialize_tasks`` (a function of the task files and its arguments)."""
    import lmms_eval.models  # noqa: F401  (loads the project's entry point, which wraps the method first)
    from lmms_eval.tasks import TaskManager

    original = TaskManager.initialize_tasks
    indexes: dict[str, dict] = {}

    @functools.wraps(original)
    def initialize_tasks(self: Any, include_path: Any = None, include_defaults: bool = True) -> dict:
        key = json.dumps([include_path, include_defaults], default=str)
        if key not in indexes:
            indexes[key] = original(self, include_path=include_path, include_defaults=include_defaults)
        return copy.deepcopy(indexes[key])

    TaskManager.initialize_tasks = initialize_tasks


def main(spec: str) -> int:
    from lmms_eval.__main__ import cli_evaluate

    index_tasks_once()
    for run in json.loads(Path(spec).read_text()):
        log = Path(run["log"])
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as stream, contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
            sys.argv = ["lmms-eval", *run["argv"]]
            try:
                cli_evaluate()
            except BaseException:  # a run's failure, SystemExit included, must not end the batch
                traceback.print_exc()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
