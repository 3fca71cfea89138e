"""Running a command against a real full or read-only file system: a tiny tmpfs in a private mount namespace.

``unshare --user --map-root-user --mount`` gives an unprivileged process its own mount table, where it may
mount a tmpfs of a few kilobytes (writes then fail with ENOSPC) or remount it read-only (EROFS). The mount
disappears with the process, so the command and the checks of what it left behind run in one shell.
Where user namespaces are not allowed but the tests run as root (as in many CI containers), a plain
``unshare --mount`` does the same without a user namespace. Where neither works, the tests that need it
fail under ``CI=true`` (they guard against data loss, so a CI run must not pass without them) and are
skipped elsewhere, with the reason.
"""

from __future__ import annotations

import functools
import os
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


UNSHARE_WAYS = (
    ("unshare", "--user", "--map-root-user", "--mount"),  # unprivileged: a user namespace
    ("unshare", "--mount"),  # root without user namespaces: a mount namespace only
)


@functools.cache
def unshare_command() -> tuple[str, ...] | None:
    """The first ``unshare`` prefix under which a process may mount a tmpfs of its own, or None."""
    if shutil.which("unshare") is None:
        return None
    ways = UNSHARE_WAYS if os.geteuid() == 0 else UNSHARE_WAYS[:1]
    with tempfile.TemporaryDirectory() as folder:
        for way in ways:
            probe = [*way, "sh", "-c", f"mount -t tmpfs -o size=16k tmpfs {shlex.quote(folder)}"]
            try:
                if subprocess.run(probe, capture_output=True, timeout=30).returncode == 0:
                    return way
            except (OSError, subprocess.SubprocessError):
                continue
    return None


def tiny_fs_available() -> bool:
    """Whether this machine lets a process mount a tmpfs in its own mount namespace."""
    return unshare_command() is not None


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


UNAVAILABLE = (
    "needs a private mount namespace to mount a tiny tmpfs (unshare with user namespaces, or as root); "
    "this machine allows neither"
)

# Under CI the mark does not skip: run_on_tiny_fs then fails with UNAVAILABLE.
needs_tiny_fs = pytest.mark.skipif(not _in_ci() and not tiny_fs_available(), reason=UNAVAILABLE)


@dataclass(frozen=True)
class TinyFsRun:
    """What a command on the tiny file system did."""

    returncode: int
    stdout: str
    stderr: str
    left: list[str]  # every path left under the mount point afterwards (relative), hidden ones too


def run_on_tiny_fs(
    mount_point: Path,
    argv: Sequence[str],
    *,
    size_kb: int = 64,
    read_only: bool = False,
    timeout: int = 300,
    way: Sequence[str] | None = None,
) -> TinyFsRun:
    """Run ``argv`` with a fresh ``size_kb`` tmpfs (read-only if asked) mounted on ``mount_point``.

    ``mount_point`` must be an existing empty folder; the command sees the tmpfs there, and ``left``
    lists what it left on it. ``way`` is the ``unshare`` prefix (default: the first that works here).
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
    way = way or unshare_command()
    if way is None:
        pytest.fail(f"{UNAVAILABLE} (CI=true: a data-loss guarantee must not be skipped)")
    done = subprocess.run(
        [*way, "sh", "-c", script],
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
