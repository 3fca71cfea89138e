"""Several lmms-eval CLI runs in one Python process: ``python lmms_eval_batch.py RUNS.json``.

``RUNS.json`` is a list of ``{"argv": [...], "log": PATH}``. Each run is what ``lmms-eval ARGV...`` does
(the CLI's own ``cli_evaluate`` on that command line), with its output going to its own log file; a run
that fails does not stop the next one. Paying the start-up of lmms-eval and transformers once keeps a
matrix of runs affordable. What each run wrote is checked by the caller, as for a single run (the CLI
reports a failed evaluation in its log, not in its exit status).
"""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
from pathlib import Path


def main(spec: str) -> int:
    from lmms_eval.__main__ import cli_evaluate

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
