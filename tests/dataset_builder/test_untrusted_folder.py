"""A dataset folder is untrusted input: only regular files of bounded size are read (a pipe or a link to a
device is one line, never a hang or an exhausted memory), every manifest field is type-checked, and rows
come only from the shards the manifest lists, parsed from the very bytes whose sha256 was checked."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dataset_edits import rehash

from modality_conflict.dataset_builder import resolve
from modality_conflict.dataset_builder.builder import build_dataset
from modality_conflict.dataset_builder.canonical import CANONICAL, DatasetSpec
from modality_conflict.dataset_builder.folder import DatasetFolder, DatasetFolderError
from modality_conflict.dataset_builder.manifest import manifest_problems

CLI = [sys.executable, "-m", "modality_conflict.cli.main"]
# Long enough for a cold start on a loaded machine; a read that blocks on a pipe never ends.
HANG_S = 180


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop(resolve.DATA_ENV, None)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=HANG_S, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("untrusted") / "set"
    build_dataset(out, groups=2, seed=3, workers=1)
    return out


@pytest.fixture
def copy(built: Path, tmp_path: Path) -> Path:
    out = tmp_path / "set"
    shutil.copytree(built, out)
    return out


def _plant(path: Path, kind: str) -> str:
    """Replace ``path`` by a named pipe or a link to /dev/zero; return how readers must call it."""
    path.unlink()
    if kind == "pipe":
        os.mkfifo(path)
        return "a named pipe"
    path.symlink_to("/dev/zero")
    return "a character device"


# --- only regular files, with a size cap ---


@pytest.fixture(scope="module")
def run_on_built(built: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A simulated lmms-eval run on the built folder, and a submission made from it."""
    from fixtures_results import write_lmms_eval_run

    from modality_conflict.analysis import submission
    from modality_conflict.analysis.results import read_task_results

    folder = DatasetFolder(built)
    docs = folder.read_table([c for c in folder.kind.features if c != "image"]).to_pylist()
    root = tmp_path_factory.mktemp("run")
    write_lmms_eval_run(root, docs=docs, dataset_path=str(built), dataset_revision=None)
    (run,) = read_task_results([root])
    return root, submission.write_submission(submission.build_submission(run), root / "submission.json")


@pytest.mark.parametrize(
    ("name", "kind"), [("manifest.json", "pipe"), ("README.md", "pipe"), ("manifest.json", "dev-zero")]
)
def test_a_pipe_or_a_device_in_a_folder_is_one_line_for_every_command(
    copy: Path, tmp_path: Path, run_on_built: tuple[Path, Path], name: str, kind: str
) -> None:
    run, submission = run_on_built
    what = _plant(copy / name, kind)
    (tmp_path / "subs").mkdir()
    commands = {
        "validate": ["validate", str(copy), "--skip-images"],
        "eval": ["eval", "--data", str(copy), "--output", str(tmp_path / "out")],
        "leaderboard": ["leaderboard", str(tmp_path / "subs"), "--data", str(copy)],
        "verify": ["verify", str(submission), "--data", str(copy)],
        "submit": ["submit", str(run), "--out", str(tmp_path / "s.json"), "--data", str(copy)],
    }
    for command, args in commands.items():
        done = _cli(*args, cwd=tmp_path)
        assert done.returncode == 2, (command, done.stderr)
        assert "Traceback" not in done.stderr, command
        assert f"{name} is {what}, not a regular file" in done.stderr, (command, done.stderr)
        assert done.stderr.startswith("error: "), command


def test_an_oversized_manifest_is_refused_before_it_is_read(copy: Path) -> None:
    manifest = copy / "manifest.json"
    with manifest.open("r+b") as handle:
        handle.truncate(64 << 20)  # sparse: 64 MiB that cost no disk
    with pytest.raises(DatasetFolderError, match=r"manifest.json is 67108864 bytes, more than the \d+"):
        DatasetFolder(copy).manifest  # noqa: B018 - the read is what is tested


def _resolve_in_child(spec: DatasetSpec, root: Path) -> list[str]:
    code = textwrap.dedent(
        f"""
        import json
        from modality_conflict.dataset_builder.canonical import DatasetSpec
        from modality_conflict.dataset_builder.resolve import ensure_dataset
        fields = json.loads({json.dumps(json.dumps(dataclasses.asdict(spec)))})
        fields["software"] = tuple(map(tuple, fields["software"]))
        print(json.dumps(ensure_dataset(DatasetSpec(**fields), root={str(root)!r}, workers=1).record()))
        """
    )
    return [sys.executable, "-c", code]


def test_pipes_planted_in_the_cache_neither_hang_nor_are_trusted(built: Path, tmp_path: Path) -> None:
    spec = dataclasses.replace(
        CANONICAL,
        name="test-set",
        preset="test",
        groups=2,
        seed=3,
        fingerprint=DatasetFolder(built).fingerprint,
    )
    folder = resolve.ensure_dataset(spec, root=tmp_path, workers=1, log=lambda line: None).path
    os.mkfifo(folder.with_name(folder.name + ".hub-revision"))  # where a Hub copy records its commit
    done = subprocess.run(
        _resolve_in_child(spec, tmp_path), capture_output=True, text=True, timeout=HANG_S, check=True
    )
    record = json.loads(done.stdout)
    assert record["source"] == "cache" and record["revision"] is None and record["canonical"]
    _plant(folder / "manifest.json", "pipe")
    done = subprocess.run(
        _resolve_in_child(spec, tmp_path), capture_output=True, text=True, timeout=HANG_S, check=True
    )
    assert json.loads(done.stdout)["source"] == "built"  # the poisoned copy was replaced, not read
    assert "manifest.json is a named pipe, not a regular file" in done.stderr
    assert DatasetFolder(folder).hash_mismatches() == []


# --- every manifest field is type-checked ---


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda m: m["arguments"].update(groups="twelve"),
            "'arguments.groups' is 'twelve', expected an integer",
        ),
        (lambda m: m["arguments"].update(seed=True), "'arguments.seed' is True, expected an integer"),
        (lambda m: m.update(num_rows="486"), "'num_rows' is '486', expected an integer"),
        (lambda m: m.update(dataset=7), "'dataset' is 7, expected a non-empty string"),
        (
            lambda m: m["layout"].update(groups_per_shard="2"),
            "'layout.groups_per_shard' is '2', expected a list",
        ),
        (lambda m: m.update(software=["numpy"]), "'software' is ['numpy'], expected a table of version"),
        (lambda m: m["counts"].update(condition=3), "'counts' is"),
        (lambda m: m.pop("split"), "lacks 'split'"),
        (lambda m: m.update(extra=1), "unknown field 'extra'"),
        (lambda m: next(iter(m["files"].values())).update(size="1"), ".size is '1', expected an integer"),
        (lambda m: next(iter(m["files"].values())).update(sha256="x" * 64), ".sha256 is 'xxxxx"),
    ],
)
def test_validate_names_every_mistyped_manifest_field(
    copy: Path, tmp_path: Path, edit, expected: str
) -> None:
    path = copy / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))
    assert any(expected in line for line in manifest_problems(manifest)), manifest_problems(manifest)
    done = _cli("validate", str(copy), "--skip-images", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert expected in done.stderr
    with pytest.raises(DatasetFolderError, match="manifest.json: "):
        DatasetFolder(copy).require_manifest()


def test_a_manifest_as_built_has_no_problem(built: Path) -> None:
    assert manifest_problems(DatasetFolder(built).manifest) == []


# --- the rows are exactly the manifest's shards, from the bytes that were checked ---


def test_the_card_cannot_point_the_reader_at_other_shards(copy: Path, tmp_path: Path) -> None:
    truth = DatasetFolder(copy).index_rows(["vision_answer", "text_answer"])
    # Another folder with every answer swapped, and the card (re-hashed) pointing at it.
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "data").mkdir(parents=True)
    for shard in DatasetFolder(copy).manifest_data_files():
        table = pq.read_table(copy / shard)
        swapped = table.set_column(
            table.schema.get_field_index("vision_answer"), "vision_answer", table["text_answer"]
        ).set_column(table.schema.get_field_index("text_answer"), "text_answer", table["vision_answer"])
        pq.write_table(swapped, elsewhere / shard)
    card = (copy / "README.md").read_text()
    assert "path: data/test-*" in card or "data/" in card
    (copy / "README.md").write_text(card.replace("data/", f"{elsewhere}/data/"))
    rehash(copy, "README.md")
    folder = DatasetFolder(copy)
    rows = folder.splits(folder.fingerprint)["test"]
    assert {
        r["row_id"]: (r["vision_answer"], r["text_answer"])
        for r in rows.select_columns(["row_id", "vision_answer", "text_answer"]).to_list()
    } == {
        row_id: (
            rows.features["vision_answer"].str2int(v["vision_answer"]),
            rows.features["text_answer"].str2int(v["text_answer"]),
        )
        for row_id, v in truth.items()
    }


def test_a_shard_changed_after_the_check_is_never_parsed(copy: Path) -> None:
    folder = DatasetFolder(copy)
    fingerprint = folder.fingerprint
    assert fingerprint is not None
    shard_name = folder.manifest_data_files()[0]
    shard = copy / shard_name
    rows = pq.read_table(shard)
    pq.write_table(rows.slice(0, rows.num_rows - 1), shard)  # a valid parquet file, one row short
    with pytest.raises(DatasetFolderError, match="are not the shard manifest.json records"):
        DatasetFolder(copy).splits(fingerprint)
    shard.write_bytes(b"\0" * DatasetFolder(copy).manifest["files"][shard_name]["size"])  # right size only
    with pytest.raises(DatasetFolderError, match="are not the shard manifest.json records"):
        DatasetFolder(copy).splits(fingerprint)
    pq.write_table(rows.slice(0, rows.num_rows - 1), shard)
    rehash(copy, shard_name)  # a consistent folder, but not the one that was checked
    with pytest.raises(DatasetFolderError, match="the manifest changed after the data was checked"):
        DatasetFolder(copy).splits(fingerprint)


def test_shards_the_manifest_does_not_list_are_not_read(copy: Path) -> None:
    listed = DatasetFolder(copy).manifest_data_files()
    shutil.copy(copy / listed[0], copy / "data" / "test-00009-of-00009.parquet")
    folder = DatasetFolder(copy)
    assert len(folder.read_table(["row_id"])) == folder.manifest["num_rows"]
    with pytest.raises(DatasetFolderError, match="not listed in manifest.json"):
        folder.read_table(files=["data/test-00009-of-00009.parquet"])
