"""`make setup` on a disk too full for the environment: one clear line, and nothing written."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_setup_refuses_a_disk_without_room_before_writing_anything(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    # No disk has a million GiB free, so the check must refuse here whatever this machine has.
    done = subprocess.run(
        ["make", "setup", f"VENV={venv}", "SETUP_FREE_GIB=1000000"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    message = done.stderr.strip().splitlines()[0]
    assert message.startswith("make setup: ")
    assert "GiB free on the disk of" in message and "needs about 1e+06 GiB" in message
    assert not venv.exists()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_setup_does_not_ask_an_existing_environment_for_room_again(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    # Dry run: with the folder there, the check passes and make goes on to (re)create the venv.
    done = subprocess.run(
        ["make", "-n", "setup", f"VENV={venv}", "SETUP_FREE_GIB=1000000"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    check = subprocess.run(
        ["bash", "-c", done.stdout.splitlines()[0]],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "CHECK_FREE_SPACE": _check_source()},
    )
    assert check.returncode == 0, check.stderr


def _check_source() -> str:
    text = (REPO / "Makefile").read_text()
    return text.split("define CHECK_FREE_SPACE\n", 1)[1].split("\nendef", 1)[0]
