"""``modality-conflict demo`` options that are refused before any work: one line, nothing written.

The runs through a real vLLM server are in ``tests/e2e/test_served_vllm.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DEMO = [sys.executable, "-m", "modality_conflict.cli.main", "demo"]


def _demo(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "MC_VLLM_PYTHON"}
    return subprocess.run([*DEMO, *argv], capture_output=True, text=True, timeout=120, env=env)


def test_vllm_engine_without_vllm_says_how_to_get_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-vllm" / "bin" / "python"
    done = _demo("--engine", "vllm", "--vllm-python", str(missing), "--out", str(tmp_path / "out"))
    assert done.returncode == 1
    assert done.stderr == (
        f"error: no vLLM interpreter at {missing}: run `make vllm-env`, or name one with --vllm-python "
        "or MC_VLLM_PYTHON\n"
    )
    assert sorted(os.listdir(tmp_path)) == []


def test_vllm_engine_reads_the_interpreter_from_the_environment(tmp_path: Path) -> None:
    missing = tmp_path / "elsewhere" / "python"
    env = {**os.environ, "MC_VLLM_PYTHON": str(missing)}
    command = [*DEMO, "--engine", "vllm", "--out", str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1 and done.stderr.startswith(f"error: no vLLM interpreter at {missing}: ")
    assert not (tmp_path / "out").exists()


def test_checkpoint_option_is_checked_first(tmp_path: Path) -> None:
    done = _demo("--checkpoint", str(tmp_path), "--retrain", "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr == "error: --checkpoint replaces --model and --retrain; give only one of them\n"
    done = _demo("--checkpoint", str(tmp_path), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr == f"error: --checkpoint {tmp_path}: no config.json (not a checkpoint folder)\n"
