"""Building the dataset folder: layout, determinism, load_dataset round trip, resume and atomicity."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from modality_conflict.cli.main import main as cli_main
from modality_conflict.dataset_builder import builder as builder_module
from modality_conflict.dataset_builder import specs
from modality_conflict.dataset_builder import writer as writer_module
from modality_conflict.dataset_builder.builder import build_dataset, resolve_groups, shard_bounds
from modality_conflict.dataset_builder.constants import BUILDER_VERSION, COLORS, PRESETS
from modality_conflict.dataset_builder.errors import BuildError
from modality_conflict.dataset_builder.validate import validate_dataset

SMALL = PRESETS["small"]


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("build") / "small"
    build_dataset(out, groups=SMALL, seed=0, workers=1)
    return out


def test_layout_is_a_hub_dataset_repo(small: Path) -> None:
    assert sorted(_digests(small)) == ["README.md", "data/test-00000-of-00001.parquet", "manifest.json"]
    text = (small / "README.md").read_text()
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["configs"] == [
        {"config_name": "default", "data_files": [{"split": "test", "path": "data/test-*"}]}
    ]
    assert meta["license"] and meta["pretty_name"]
    assert meta["task_categories"] == ["visual-question-answering"]
    assert meta["size_categories"] == ["n<1K"]
    assert meta["dataset_info"]["splits"] == [
        {"name": "test", "num_bytes": meta["dataset_info"]["dataset_size"], "num_examples": SMALL * 81}
    ]
    assert (
        meta["dataset_info"]["download_size"] == (small / "data/test-00000-of-00001.parquet").stat().st_size
    )
    assert "2511.02243" in text and "@misc{" in text
    manifest = yaml.safe_load((small / "manifest.json").read_text())
    assert manifest["arguments"] == {"groups": SMALL, "seed": 0}
    assert manifest["builder_version"] == BUILDER_VERSION
    digests = _digests(small)
    assert {k: v["sha256"] for k, v in manifest["files"].items()} == {
        k: v for k, v in digests.items() if k != "manifest.json"
    }
    # Streaming writer: one row group per item group, so memory holds one group at a time.
    meta_pq = pq.ParquetFile(small / "data/test-00000-of-00001.parquet").metadata
    assert meta_pq.num_row_groups == SMALL
    assert b"huggingface" in pq.read_schema(small / "data/test-00000-of-00001.parquet").metadata


def test_small_preset_validates(small: Path) -> None:
    report = validate_dataset(small)
    assert report.num_rows == SMALL * 81
    assert report.num_groups == SMALL
    assert report.counts["condition"] == {
        "vision_only": SMALL * 24,
        "text_only": SMALL * 5,
        "conflict": SMALL * 52,
    }
    assert report.images_decoded == SMALL * 14


def test_load_dataset_round_trip(small: Path, tmp_path: Path) -> None:
    from datasets import load_dataset

    ds = load_dataset(str(small), split="test", cache_dir=str(tmp_path / "cache"))
    assert ds.features == specs.COLOR.features
    assert ds.num_rows == SMALL * 81
    first = ds[0]
    assert first["row_id"] == "g0000-v00-none"
    assert first["image"].size == (800, 600)
    assert ds.features["vision_answer"].int2str(first["vision_answer"]) == COLORS[0]
    text_only = ds.filter(lambda c: c == 1, input_columns=["condition"])
    assert all(img is None for img in text_only["image"])


def test_same_seed_same_bytes_whatever_the_worker_count(small: Path, tmp_path: Path) -> None:
    again = build_dataset(tmp_path / "again", groups=SMALL, seed=0, workers=2)
    assert not again.reused
    assert _digests(tmp_path / "again") == _digests(small)
    other = build_dataset(tmp_path / "other", groups=SMALL, seed=1, workers=1)
    assert (
        _digests(tmp_path / "other")["data/test-00000-of-00001.parquet"]
        != _digests(small)["data/test-00000-of-00001.parquet"]
    )
    assert other.num_rows == again.num_rows


def test_shards_split_groups_and_still_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datasets import load_dataset

    monkeypatch.setitem(specs.DATASETS, "color", dataclasses.replace(specs.COLOR, groups_per_shard=3))
    out = tmp_path / "sharded"
    build_dataset(out, groups=7, seed=2, workers=1)
    names = sorted(p.name for p in (out / "data").iterdir())
    assert names == [f"test-0000{i}-of-00003.parquet" for i in range(3)]
    validate_dataset(out)
    ds = load_dataset(str(out), split="test", cache_dir=str(tmp_path / "cache"))
    assert ds.num_rows == 7 * 81
    assert ds["group_id"] == sorted(ds["group_id"])


def test_rerun_with_same_arguments_is_a_verified_no_op(small: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in small.rglob("*")}
    result = build_dataset(small, groups=SMALL, seed=0, workers=1)
    assert result.reused
    assert {p: p.stat().st_mtime_ns for p in small.rglob("*")} == before


def test_a_damaged_build_is_rebuilt_only_with_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    build_dataset(out, groups=2, seed=0, workers=1)
    good = _digests(out)
    shard = out / "data/test-00000-of-00001.parquet"
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(BuildError, match=r"files changed since \(data/test-00000-of-00001.parquet: size"):
        build_dataset(out, groups=2, seed=0, workers=1)
    result = build_dataset(out, groups=2, seed=0, workers=1, overwrite=True)
    assert not result.reused
    assert _digests(out) == good


def test_a_rerun_never_deletes_what_the_builder_did_not_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ds"
    build_dataset(out, groups=2, seed=0, workers=1)
    (out / "notes.txt").write_text("my notes")
    (out / "README.md").write_text((out / "README.md").read_text() + "\nMy own remarks.\n")
    edited = (out / "README.md").read_text()
    # Same arguments, edited card: refused, nothing touched.
    assert cli_main(["build", "--groups", "2", "--seed", "0", "--out", str(out), "--quiet"]) == 2
    assert "files changed since (README.md: size" in capsys.readouterr().err
    # With --overwrite the user's file would be lost with the folder: refused too, naming it.
    overwrite = ["build", "--groups", "2", "--seed", "0", "--out", str(out), "--quiet", "--overwrite"]
    assert cli_main(overwrite) == 2
    err = capsys.readouterr().err
    assert "did not write (notes.txt)" in err and "move them elsewhere" in err
    assert (out / "notes.txt").read_text() == "my notes" and (out / "README.md").read_text() == edited
    assert _siblings(out) == []
    # Once the user's file is moved away, --overwrite rebuilds only the builder's files.
    (out / "notes.txt").rename(tmp_path / "notes.txt")
    assert cli_main(overwrite) == 0
    assert (out / "README.md").read_text() != edited
    validate_dataset(out)


def test_an_identical_build_is_reused_around_foreign_files(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    build_dataset(out, groups=1, seed=0, workers=1)
    (out / "notes.txt").write_text("kept")
    assert build_dataset(out, groups=1, seed=0, workers=1).reused
    assert (out / "notes.txt").read_text() == "kept"
    assert builder_module.foreign_files(out) == ["notes.txt"]


def test_other_arguments_need_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    build_dataset(out, groups=2, seed=0, workers=1)
    with pytest.raises(BuildError, match=r"other arguments \(groups=2, seed=0.*--overwrite"):
        build_dataset(out, groups=2, seed=1, workers=1)
    result = build_dataset(out, groups=2, seed=1, workers=1, overwrite=True)
    assert result.seed == 1
    assert yaml.safe_load((out / "manifest.json").read_text())["arguments"] == {"groups": 2, "seed": 1}
    assert _siblings(out) == []


def test_never_replaces_a_foreign_folder(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(BuildError, match="not a dataset made by `modality-conflict build`"):
        build_dataset(out, groups=1, seed=0, workers=1, overwrite=True)
    assert (out / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    build_dataset(empty, groups=1, seed=0, workers=1)
    validate_dataset(empty)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"groups": 0, "seed": 0}, "--groups must be between 1"),
        ({"groups": 1, "seed": -3}, "--seed must be a non-negative"),
        ({"groups": 1, "seed": 0, "workers": 0}, "--workers must be at least 1"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(BuildError, match=message):
        build_dataset(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_presets() -> None:
    assert resolve_groups("small", None) == SMALL
    assert resolve_groups("paper", None) == 400
    assert resolve_groups(None, None) == 400
    assert resolve_groups("small", 5) == 5
    assert shard_bounds(400) == [(0, 200), (200, 400)]
    assert shard_bounds(12) == [(0, 12)]
    with pytest.raises(BuildError, match="unknown preset 'huge'"):
        resolve_groups("huge", None)


@pytest.mark.parametrize("workers", [1, 2])
def test_failure_inside_the_writer_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    out = tmp_path / "ds"
    calls = {"n": 0}
    original = writer_module.ShardWriter.write_rows

    def failing(self: writer_module.ShardWriter, rows: list[dict]) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        original(self, rows)

    monkeypatch.setattr(writer_module.ShardWriter, "write_rows", failing)
    with pytest.raises(BuildError, match=f"cannot write {out}: disk full.*nothing was left behind"):
        build_dataset(out, groups=8, seed=0, workers=workers)
    assert not out.exists()
    assert _siblings(out) == []
    monkeypatch.setattr(writer_module.ShardWriter, "write_rows", original)
    build_dataset(out, groups=3, seed=0, workers=1)
    validate_dataset(out)


def test_failure_keeps_the_previous_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "ds"
    build_dataset(out, groups=2, seed=0, workers=1)
    before = _digests(out)

    def failing(*args: object, **kwargs: object) -> None:
        raise RuntimeError("interrupted")

    monkeypatch.setattr(builder_module, "write_manifest", failing)
    with pytest.raises(RuntimeError, match="interrupted"):
        build_dataset(out, groups=2, seed=5, workers=1, overwrite=True)
    assert _digests(out) == before
    assert _siblings(out) == []


def test_killed_build_leaves_only_a_hidden_partial_that_the_next_run_removes(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    # A child process that dies (SIGKILL, no clean-up) right after writing its first row group.
    script = textwrap.dedent(
        f"""
        import os, signal
        from modality_conflict.dataset_builder import writer
        from modality_conflict.dataset_builder.builder import build_dataset
        original = writer.ShardWriter.write_rows
        def write_then_die(self, rows):
            original(self, rows)
            os.kill(os.getpid(), signal.SIGKILL)
        writer.ShardWriter.write_rows = write_then_die
        build_dataset({str(out)!r}, groups=3, seed=0, workers=1)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True)
    assert done.returncode == -9
    assert not out.exists()
    leftovers = _siblings(out)
    assert len(leftovers) == 1 and ".partial-" in leftovers[0]
    assert not (out.parent / leftovers[0] / "manifest.json").exists()
    build_dataset(out, groups=3, seed=0, workers=1)
    assert _siblings(out) == []
    validate_dataset(out)


def test_partial_folders_of_live_processes_are_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    live = tmp_path / f".ds.partial-{os.getppid()}-abcdef12"
    live.mkdir()
    removed = writer_module.remove_stale_partials(out)
    assert removed == [] and live.exists()


def test_cli_build_then_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert cli_main(["build", "--preset", "small", "--groups", "2", "--seed", "4", "--out", str(out)]) == 0
    assert "built" in capsys.readouterr().out
    assert cli_main(["build", "--groups", "2", "--seed", "4", "--out", str(out)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert cli_main(["validate", str(out)]) == 0
    assert ": OK - 162 rows" in capsys.readouterr().out
    assert cli_main(["build", "--groups", "2", "--seed", "5", "--out", str(out)]) == 2
    assert "error: " in capsys.readouterr().err
    with pytest.raises(SystemExit) as excinfo:
        cli_main(["build", "--groups", "0", "--out", str(out)])
    assert excinfo.value.code == 2
    assert "expected a positive integer" in capsys.readouterr().err


def test_progress_bar_on_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build_dataset(tmp_path / "quiet", groups=2, seed=0, workers=1)
    assert "building" not in capsys.readouterr().err
    build_dataset(tmp_path / "loud", groups=2, seed=0, workers=1, progress=True)
    assert "building: 100%" in capsys.readouterr().err


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has exited, only its parent has not collected it


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process table in /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_pool_workers_die_with_a_killed_build(tmp_path: Path, sig: signal.Signals) -> None:
    out = tmp_path / "ds"
    command = [sys.executable, "-m", "modality_conflict.cli.main", "build", "--groups", "300"]
    build = subprocess.Popen(
        [*command, "--workers", "2", "--quiet", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(workers := _children(build.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(workers) == 2, "the build did not start its two workers"
        time.sleep(0.5)
        build.send_signal(sig)
        # Returns only once every holder of the pipes (the workers too) has exited.
        stdout, stderr = build.communicate(timeout=60)
        deadline = time.monotonic() + 10
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [pid for pid in workers if _alive(pid)] == []
    finally:
        for pid in [build.pid, *workers]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        build.wait()
    assert not out.exists()
    if sig == signal.SIGTERM:
        # Handled like Ctrl-C: the temporary folder is removed and the command says so in one line.
        assert build.returncode == 130 and stderr == "interrupted\n" and stdout == ""
        assert _siblings(out) == []
    else:
        assert build.returncode == -signal.SIGKILL
