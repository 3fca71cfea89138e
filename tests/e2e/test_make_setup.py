"""`make setup` on a disk too full for the environment: one clear line, and nothing written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# No disk has a million GiB free, so the check must refuse whatever this machine has.
NEED_GIB = "1000000"


def _plain_env() -> dict[str, str]:
    """This environment without what an outer ``make test`` passes down (it would change make's output)."""
    return {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}


def _check_source() -> str:
    text = (REPO / "Makefile").read_text()
    return text.split("define CHECK_FREE_SPACE\n", 1)[1].split("\nendef", 1)[0]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_setup_refuses_a_disk_without_room_before_writing_anything(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    done = subprocess.run(
        ["make", "--no-print-directory", "setup", f"VENV={venv}", f"SETUP_FREE_GIB={NEED_GIB}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=_plain_env(),
    )
    assert done.returncode != 0
    message = done.stderr.strip().splitlines()[0]
    assert message.startswith("make setup: ")
    assert "GiB free on the disk of" in message and "needs about 1e+06 GiB" in message
    assert not venv.exists()


def test_an_existing_environment_is_not_asked_for_room_again(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    check = [sys.executable, "-c", _check_source(), str(venv), NEED_GIB]
    assert subprocess.run(check, capture_output=True, text=True).returncode == 1
    venv.mkdir()
    # An existing environment only updates in place, so the check lets it through.
    done = subprocess.run(check, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
