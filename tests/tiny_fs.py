"""Running a command against a real full or read-only file system: a tiny tmpfs in a private mount namespace.

``unshare --user --map-root-user --mount`` gives an unprivileged process its own mount table, where it may
mount a tmpfs of a few kilobytes (writes then fail with ENOSPC) or remount it read-only (EROFS). The mount
disappears with the process, so the command and the checks of what it left behind run in one shell.
Where user namespaces are not allowed, the tests that need this are skipped.
"""

from __future__ import annotations

import functools
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

_RC_MARK = "__rc="
_LS_MARK = "__left:"


@functools.cache
def tiny_fs_available() -> bool:
    """Whether this machine lets a process mount a tmpfs in its own namespace."""
    if shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory() as folder:
        probe = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c"]
        probe.append(f"mount -t tmpfs -o size=16k tmpfs {shlex.quote(folder)}")
        try:
            return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
        except (OSError, subprocess.SubprocessError):
            return False


needs_tiny_fs = pytest.mark.skipif(
    not tiny_fs_available(), reason="needs unshare and user namespaces to mount a tiny tmpfs"
)


@dataclass(frozen=True)
class TinyFsRun:
    """What a command on the tiny file system did."""

    returncode: int
    stdout: str
    stderr: str
    left: list[str]  # every path left under the mount point afterwards (relative), hidden ones too


def run_on_tiny_fs(
    mount_point: Path, argv: Sequence[str], *, size_kb: int = 64, read_only: bool = False, timeout: int = 300
) -> TinyFsRun:
    """Run ``argv`` with a fresh ``size_kb`` tmpfs (read-only if asked) mounted on ``mount_point``.

    ``mount_point`` must be an existing empty folder; the command sees the tmpfs there, and ``left``
    lists what it left on it.
    """
    mount = shlex.quote(str(mount_point))
    steps = [f"mount -t tmpfs -o size={size_kb}k tmpfs {mount}"]
    if read_only:
        steps.append(f"mount -o remount,ro {mount}")
    command = " ".join(shlex.quote(part) for part in argv)
    script = (
        " && ".join(steps)
        + f" || exit 99\n{command}\necho {_RC_MARK}$?\n"
        + f"cd {mount} && find . -mindepth 1 | sed 's|^./|{_LS_MARK}|'\n"
    )
    done = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"could not set up the tiny file system: {done.stderr}"
    lines = done.stdout.splitlines()
    rc_line = next(line for line in lines if line.startswith(_RC_MARK))
    left = sorted(line[len(_LS_MARK) :] for line in lines if line.startswith(_LS_MARK))
    stdout = "\n".join(line for line in lines if not line.startswith((_RC_MARK, _LS_MARK)))
    return TinyFsRun(int(rc_line[len(_RC_MARK) :]), stdout, done.stderr, left)


def cli(*args: str) -> list[str]:
    """The ``modality-conflict`` command line, run by this interpreter."""
    return [sys.executable, "-m", "modality_conflict.cli.main", *args]
