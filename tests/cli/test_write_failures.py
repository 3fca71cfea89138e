"""`submit`, `report` and `leaderboard` on a full or read-only file system: one line, nothing partial."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fixtures_results import write_lmms_eval_run
from tiny_fs import cli, needs_tiny_fs, run_on_tiny_fs

from modality_conflict.cli.main import main as cli_main

pytestmark = needs_tiny_fs


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    write_lmms_eval_run(root, model_id="org/vision-lover", balance_point=-0.4, n_groups=12, seed=5)
    return root


@pytest.fixture(scope="module")
def submissions(results: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("submissions")
    assert cli_main(["submit", str(results), "--out", str(folder / "a.json")]) == 0
    shutil.copy(folder / "a.json", folder / "b.json")
    return folder


def _commands(results: Path, submissions: Path, out: Path, data: Path) -> dict[str, list[str]]:
    board = cli("leaderboard", str(submissions), "--out", str(out / "board"), "--data", str(data))
    return {
        "submit": cli("submit", str(results), "--out", str(out / "sub" / "s.json")),
        "report": cli("report", str(results), "--out", str(out / "report")),
        "leaderboard": board,
    }


# Sizes that let each command start writing and then run out of room (a page is 4 KiB).
FULL_SIZES_KB = {"submit": 64, "report": 64, "leaderboard": 4}


@pytest.mark.parametrize("command", sorted(FULL_SIZES_KB))
def test_full_file_system(
    command: str, results: Path, submissions: Path, tmp_path: Path, quick_dataset_dir: Path
) -> None:
    mount = tmp_path / "mnt"
    mount.mkdir()
    argv = _commands(results, submissions, mount, quick_dataset_dir)[command]
    done = run_on_tiny_fs(mount, argv, size_kb=FULL_SIZES_KB[command])
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: cannot write {mount}/")
    assert "no space left on the device (free some space or write somewhere else)" in done.stderr
    partial = [name for name in done.left if ".partial" in name]
    assert partial == []


@pytest.mark.parametrize("command", sorted(FULL_SIZES_KB))
def test_read_only_file_system(
    command: str, results: Path, submissions: Path, tmp_path: Path, quick_dataset_dir: Path
) -> None:
    mount = tmp_path / "mnt"
    mount.mkdir()
    done = run_on_tiny_fs(
        mount, _commands(results, submissions, mount, quick_dataset_dir)[command], read_only=True
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: cannot write {mount}/")
    assert "read-only file system (write to a writable folder)" in done.stderr
    assert done.left == []
