"""Running the real lmms-eval CLI from tests, offline, and checking what it wrote."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modality_conflict.analysis.evaluate import RunOutputs, find_run_outputs
from modality_conflict.dataset_builder.constants import COLORS
from modality_conflict.dataset_builder.specs import vocabulary_for
from modality_conflict.mc_tasks.names import RECORD_KEY
from modality_conflict.metrics.answers import normalize_answer
from modality_conflict.models.envelope import decode_envelope


def offline_env(data_dir: Path | None) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("MODALITY_CONFLICT_DATA", None)
    if data_dir is not None:
        env["MODALITY_CONFLICT_DATA"] = str(data_dir)
    return env


def samples(outputs: RunOutputs, task: str) -> list[dict[str, Any]]:
    """The per-doc lines of a task's sample log."""
    return [json.loads(line) for line in outputs.samples[task].read_text().splitlines()]


def logged_responses(sample: dict[str, Any]) -> list[Any]:
    """The responses a sample log holds for one doc (lmms-eval drops ``resps`` when it equals
    ``filtered_resps`` and nests the list of a one-request doc)."""
    logged = sample.get("filtered_resps", sample.get("resps"))
    while isinstance(logged, list) and len(logged) == 1 and isinstance(logged[0], list):
        logged = logged[0]
    return logged if isinstance(logged, list) else [logged]


def miller_madow(answers: list[str]) -> float:
    """The Miller-Madow corrected entropy (nats) of the empirical distribution of ``answers``."""
    counts, n = Counter(answers), len(answers)
    return -sum(c / n * math.log(c / n) for c in counts.values()) + (len(counts) - 1) / (2 * n)


def assert_sampled_entropy_is_that_of_the_logged_answers(
    outputs: RunOutputs, task: str, *, n_docs: int, repeats: int
) -> None:
    """Every doc of a sampled run got its K answers, and its entropy is theirs; not every doc the same."""
    entropies = []
    rows = samples(outputs, task)
    assert len(rows) == n_docs
    for sample in rows:
        record = sample[RECORD_KEY]
        answers = []
        for response in logged_responses(sample):
            envelope = decode_envelope(response)
            text = envelope["text"] if envelope is not None else response
            choices = record.get("answer_choices") or COLORS
            synonyms = vocabulary_for(choices).synonyms
            answers.append(normalize_answer(text, choices, synonyms=synonyms))
        assert len(answers) == repeats, "every repeat must reach process_results"
        assert record["entropy_estimator"] == "sampled"
        assert record["entropy"] == pytest.approx(miller_madow(answers), abs=1e-12)
        entropies.append(record["entropy"])
    assert len(set(entropies)) > 1, "every document got the same entropy: the K answers were not all used"


def lmms_eval_command() -> list[str]:
    """The ``lmms-eval`` console script of this environment, which is what a user types (``python -m
    lmms_eval`` only where the environment has no script, e.g. a package imported from a source tree)."""
    script = Path(sys.executable).with_name("lmms-eval")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "lmms_eval"]


@dataclass(frozen=True)
class RaisedError:
    """The exception a Python traceback ends with, and where it was raised."""

    type: str  # the class name, without its module
    message: str
    frames: list[tuple[str, str]]  # (file, function), outermost first


_FRAME = re.compile(r'^  File "([^"]+)", line \d+, in (\S+)$')


def raised_errors(log: str) -> list[RaisedError]:
    """Every traceback printed in ``log``, in order (a chained exception prints one per link)."""
    errors = []
    for block in log.split("Traceback (most recent call last):\n")[1:]:
        frames, message = [], None
        for line in block.splitlines():
            match = _FRAME.match(line)
            if match:
                frames.append((match.group(1), match.group(2)))
            elif frames and line and not line[0].isspace():
                message = line
                break
        if message is not None:
            name, _, text = message.partition(":")
            errors.append(RaisedError(name.rsplit(".", 1)[-1], text.strip(), frames))
    return errors


def run_lmms_eval(
    output: Path,
    *,
    model: str,
    model_args: str,
    tasks: str,
    data_dir: Path | None,
    extra: list[str] | None = None,
    launcher: list[str] | None = None,
    batch_size: int = 8,
    checked_tasks: list[str] | None = None,
) -> RunOutputs:
    """Run ``lmms-eval`` (optionally under a launcher such as torchrun) and return its checked outputs
    (those of ``checked_tasks``, by default every task of ``tasks``). Its output goes to
    ``output/lmms_eval.log``."""
    arguments = ["--model", model, "--model_args", model_args, "--tasks", tasks]
    arguments += [
        "--batch_size",
        str(batch_size),
        "--output_path",
        str(output),
        "--log_samples",
        *(extra or []),
    ]
    started = time.time()
    completed = launch_lmms_eval(output, arguments, data_dir=data_dir, launcher=launcher)
    try:
        return find_run_outputs(output, checked_tasks or tasks.split(","), since=started - 1)
    except Exception as error:
        raise AssertionError(
            f"{error}\n--- lmms-eval stderr (tail) ---\n{completed.stderr[-3000:]}"
        ) from error


def launch_lmms_eval(
    output: Path, arguments: list[str], *, data_dir: Path | None, launcher: list[str] | None = None
) -> subprocess.CompletedProcess:
    """One ``lmms-eval ARGUMENTS...`` process in ``output``, its stdout and stderr kept in
    ``output/lmms_eval.log``. lmms-eval exits 0 when an evaluation fails: callers check what it wrote."""
    command = [*(launcher + ["lmms_eval"] if launcher else lmms_eval_command()), *arguments]
    completed = subprocess.run(
        command, cwd=output, env=offline_env(data_dir), capture_output=True, text=True, timeout=900
    )
    log = output / "lmms_eval.log"
    log.write_text(completed.stdout + "\n--- stderr ---\n" + completed.stderr)
    assert completed.returncode == 0, f"lmms-eval exited {completed.returncode}; see {log}"
    return completed
