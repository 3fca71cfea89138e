"""Running the real lmms-eval CLI from tests, offline, and checking what it wrote."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from modality_conflict.mc_tasks.evaluate import RunOutputs, find_run_outputs


def offline_env(data_dir: Path | None) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("MODALITY_CONFLICT_DATA", None)
    if data_dir is not None:
        env["MODALITY_CONFLICT_DATA"] = str(data_dir)
    return env


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
) -> RunOutputs:
    """Run ``lmms-eval`` (optionally under a launcher such as torchrun) and return its checked outputs."""
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
        return find_run_outputs(output, tasks.split(","), since=started - 1)
    except Exception as error:
        raise AssertionError(
            f"{error}\n--- lmms-eval stderr (tail) ---\n{completed.stderr[-3000:]}"
        ) from error
