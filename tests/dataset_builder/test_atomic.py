"""Full and read-only file systems: one-line errors and nothing half-written (shared writer, build)."""

from __future__ import annotations

import errno
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import tiny_fs
from tiny_fs import cli, needs_tiny_fs, run_on_tiny_fs

from modality_conflict.cli.main import main as cli_main
from modality_conflict.dataset_builder import atomic
from modality_conflict.dataset_builder import writer as writer_module
from modality_conflict.dataset_builder.errors import BuildError, OutputWriteError


def test_write_is_whole_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "sub" / "out.txt"
    assert atomic.write_text_atomic(target, "first\n") == target
    assert target.read_text() == "first\n"
    real_open = open

    def full_disk_open(path: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        handle = real_open(path, mode, *args, **kwargs)  # type: ignore[call-overload]
        if "w" in mode:

            def write(data: bytes) -> int:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            handle.write = write
        return handle

    monkeypatch.setattr("builtins.open", full_disk_open)
    with pytest.raises(OutputWriteError) as caught:
        atomic.write_text_atomic(target, "second\n")
    message = str(caught.value)
    assert (
        message
        == f"cannot write {target}: no space left on the device (free some space or write somewhere else)"
    )
    monkeypatch.undo()
    assert target.read_text() == "first\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_errors_name_the_path_and_what_to_do(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputWriteError, match=f"cannot write {blocker}: it exists and is not a folder"):
        atomic.ensure_folder(blocker)
    error = OSError(errno.EROFS, "Read-only file system", "/mnt/x")
    assert (
        atomic.os_error_text(error)
        == "cannot write /mnt/x: read-only file system (write to a writable folder)"
    )
    odd = OSError(errno.EIO, "Input/output error")
    assert atomic.os_error_text(odd, "/x") == "cannot write /x: Input/output error (check the path)"


def test_build_on_a_full_disk_is_one_line_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ds"

    def full(self: writer_module.ShardWriter, rows: list[dict]) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))

    monkeypatch.setattr(writer_module.ShardWriter, "write_rows", full)
    assert cli_main(["build", "--groups", "2", "--out", str(out), "--quiet", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: cannot write {out}: no space left on the device (free some space or write somewhere "
        "else); nothing was left behind\n"
    )
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(BuildError, match="no space left"):
        from modality_conflict.dataset_builder.builder import build_dataset

        build_dataset(out, groups=1, workers=1)


@needs_tiny_fs
@pytest.mark.parametrize(
    ("read_only", "reason"),
    [(False, "no space left on the device"), (True, "read-only file system")],
)
def test_build_on_a_real_full_or_read_only_file_system(tmp_path: Path, read_only: bool, reason: str) -> None:
    mount = tmp_path / "mnt"
    mount.mkdir()
    out = mount / "ds"
    done = run_on_tiny_fs(
        mount,
        cli("build", "--groups", "3", "--workers", "1", "--quiet", "--out", str(out)),
        read_only=read_only,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: cannot write {out}: {reason}") and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
    assert done.left == []


WRITE_16K = [sys.executable, "-c", "open('f', 'wb').write(bytes(64 * 1024))"]


@pytest.mark.parametrize("way", tiny_fs.UNSHARE_WAYS, ids=["user-namespace", "root"])
def test_each_way_to_a_tiny_file_system_that_this_machine_allows_fills_up(tmp_path: Path, way: tuple) -> None:
    """Both mechanisms behind run_on_tiny_fs give a real full file system (a way this machine refuses is
    shown as a skip with its reason, never taken as working)."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    probe = subprocess.run([*way, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"{' '.join(way)} is refused here: {probe.stderr.strip()}")
    done = run_on_tiny_fs(mount, ["sh", "-c", f"cd {mount} && {shlex.join(WRITE_16K)}"], size_kb=16, way=way)
    assert done.returncode != 0 and "No space left on device" in done.stderr


def test_without_a_way_to_a_tiny_file_system_ci_fails_instead_of_skipping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tiny_fs, "unshare_command", lambda: None)
    with pytest.raises(pytest.fail.Exception, match="must not be skipped"):
        run_on_tiny_fs(tmp_path, ["true"])
