"""Running the real lmms-eval CLI from tests, offline, and checking what it wrote."""

from __future__ import annotations

import json
import math
import os
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


def run_lmms_eval(
    output: Path,
    *,
    model: str,
    model_args: str,
    tasks: str,
    data_dir: Path,
    extra: list[str] | None = None,
    launcher: list[str] | None = None,
    batch_size: int = 8,
    checked_tasks: list[str] | None = None,
) -> RunOutputs:
    """Run ``lmms-eval`` (optionally under a launcher such as torchrun) and return its checked outputs
    (those of ``checked_tasks``, by default every task of ``tasks``)."""
    command = [
        *(launcher or [sys.executable, "-m"]),
        "lmms_eval",
        "--model",
        model,
        "--model_args",
        model_args,
    ]
    command += [
        "--tasks",
        tasks,
        "--batch_size",
        str(batch_size),
        "--output_path",
        str(output),
        "--log_samples",
    ]
    command += extra or []
    started = time.time()
    completed = subprocess.run(
        command, cwd=output, env=offline_env(data_dir), capture_output=True, text=True, timeout=900
    )
    log = output / "lmms_eval.log"
    log.write_text(completed.stdout + "\n--- stderr ---\n" + completed.stderr)
    assert completed.returncode == 0, f"lmms-eval exited {completed.returncode}; see {log}"
    try:
        return find_run_outputs(output, checked_tasks or tasks.split(","), since=started - 1)
    except Exception as error:
        raise AssertionError(
            f"{error}\n--- lmms-eval stderr (tail) ---\n{completed.stderr[-3000:]}"
        ) from error


@dataclass(frozen=True)
class BatchRun:
    """One lmms-eval command line of a batch (see :func:`run_lmms_eval_batch`)."""

    name: str
    model: str
    model_args: str
    tasks: str
    extra: tuple[str, ...] = ()
    batch_size: int = 1

    def argv(self, output: Path) -> list[str]:
        return [
            "--model", self.model, "--model_args", self.model_args, "--tasks", self.tasks,
            "--batch_size", str(self.batch_size), "--output_path", str(output), "--log_samples", *self.extra,
        ]  # fmt: skip


def run_lmms_eval_batch(root: Path, runs: list[BatchRun], *, data_dir: Path) -> dict[str, Path]:
    """Run several lmms-eval command lines in one process (``lmms_eval_batch.py``); each run's
    ``--output_path`` (holding its ``lmms_eval.log``), by run name. The caller checks what each wrote."""
    spec = root / "runs.json"
    outputs = {run.name: root / run.name for run in runs}
    entries = [
        {"argv": run.argv(outputs[run.name]), "log": str(outputs[run.name] / "lmms_eval.log")} for run in runs
    ]
    spec.write_text(json.dumps(entries, indent=1))
    driver = Path(__file__).with_name("lmms_eval_batch.py")
    completed = subprocess.run(
        [sys.executable, str(driver), str(spec)],
        cwd=root,
        env=offline_env(data_dir),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    (root / "batch.log").write_text(completed.stdout + "\n--- stderr ---\n" + completed.stderr)
    assert completed.returncode == 0, (
        f"the lmms-eval batch exited {completed.returncode}; see {root / 'batch.log'}"
    )
    return outputs
