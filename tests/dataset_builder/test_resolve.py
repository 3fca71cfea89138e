"""Resolving a task's data: explicit folder, cache, pinned Hub commit, build; locks, failures, real processes.

The dataset here is a two-group build pinned by its own fingerprint (the canonical 400-group build runs
once, in ``tests/e2e/test_canonical_data.py``). The Hub is replaced at the HTTP layer, as in
``test_push.py``; nothing reaches a network.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import huggingface_hub
import pytest
from huggingface_hub.utils._http import hf_request_event_hook
from tiny_fs import needs_tiny_fs, run_on_tiny_fs

from modality_conflict.dataset_builder import resolve
from modality_conflict.dataset_builder.builder import build_dataset
from modality_conflict.dataset_builder.canonical import CANONICAL, DatasetSpec
from modality_conflict.dataset_builder.errors import DataResolutionError
from modality_conflict.dataset_builder.folder import DatasetFolder

GROUPS, SEED = 2, 0
COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A build of the test dataset made directly, to compare resolved folders with."""
    out = tmp_path_factory.mktemp("reference") / "ds"
    build_dataset(out, groups=GROUPS, seed=SEED, workers=1)
    return out


@pytest.fixture(scope="module")
def spec(reference: Path) -> DatasetSpec:
    fingerprint = DatasetFolder(reference).fingerprint
    assert fingerprint is not None
    return dataclasses.replace(
        CANONICAL, name="test-set", preset="test", groups=GROUPS, seed=SEED, fingerprint=fingerprint
    )


@pytest.fixture(autouse=True)
def no_explicit_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(resolve.DATA_ENV, raising=False)
    monkeypatch.delenv(resolve.WORKERS_ENV, raising=False)


class Lines(list):
    """Collects the resolver's log lines."""

    def __call__(self, line: str) -> None:
        self.append(line)

    def text(self) -> str:
        return "\n".join(self)


def test_cache_root_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (resolve.CACHE_ENV, "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve.cache_root() == tmp_path / "home" / ".cache" / "modality_conflict"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve.cache_root() == tmp_path / "xdg" / "modality_conflict"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert resolve.cache_root() == tmp_path / "hf" / "modality_conflict"
    monkeypatch.setenv(resolve.CACHE_ENV, str(tmp_path / "mine"))
    assert resolve.cache_root() == tmp_path / "mine"


def test_the_first_call_builds_and_later_calls_reuse_the_cache(
    spec: DatasetSpec, reference: Path, tmp_path: Path
) -> None:
    lines = Lines()
    first = resolve.ensure_dataset(spec, root=tmp_path, workers=1, log=lines)
    assert first.source == "built" and first.canonical and first.fingerprint == spec.fingerprint
    assert first.path == tmp_path / "datasets" / spec.cache_name
    assert _digests(first.path) == _digests(reference)
    assert (
        f"building the dataset (test-set, test preset: 2 groups, seed 0, builder {spec.builder_version})"
        in lines[0]
    )
    assert f"into {first.path}: no Hub copy is pinned" in lines[0]
    before = {p: p.stat().st_mtime_ns for p in first.path.rglob("*")}
    again = Lines()
    second = resolve.ensure_dataset(spec, root=tmp_path, workers=1, log=again)
    assert second.source == "cache" and second.path == first.path and again == []
    assert {p: p.stat().st_mtime_ns for p in first.path.rglob("*")} == before
    assert second.record() == {
        "source": "cache",
        "path": str(first.path),
        "revision": None,
        "fingerprint": spec.fingerprint,
        "canonical": True,
    }
    assert sorted(p.name for p in (tmp_path / "datasets").iterdir()) == [
        f".{spec.cache_name}.lock",
        spec.cache_name,
    ]


def test_a_damaged_cache_is_prepared_again(spec: DatasetSpec, reference: Path, tmp_path: Path) -> None:
    folder = resolve.ensure_dataset(spec, root=tmp_path, workers=1, log=Lines()).path
    shard = folder / DatasetFolder(folder).data_files()[0]
    shard.write_bytes(shard.read_bytes()[:-1])
    (folder / "stray.txt").write_text("not ours")  # the cache is the resolver's own: replaced whole
    lines = Lines()
    again = resolve.ensure_dataset(spec, root=tmp_path, workers=1, log=lines)
    assert again.source == "built"
    assert "the cached copy is unusable" in lines[0] and "does not match its manifest.json" in lines[0]
    assert _digests(folder) == _digests(reference)


def test_an_explicit_folder_wins_and_is_checked(
    spec: DatasetSpec, reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = Lines()
    monkeypatch.setenv(resolve.DATA_ENV, str(reference))
    used = resolve.resolve_data(spec.fingerprint, root=tmp_path / "cache", log=lines)
    assert (used.source, used.path, used.canonical) == ("env", reference.resolve(), True)
    assert not (tmp_path / "cache").exists()  # nothing else is looked at
    assert lines == [f"data: env (canonical, fingerprint {spec.fingerprint[:12]}) in {reference.resolve()}; "
                     f"ready in {used.seconds:.1f} s"]  # fmt: skip
    # A folder of other data is allowed, said and recorded.
    other = tmp_path / "other"
    build_dataset(other, groups=1, seed=4, workers=1)
    lines.clear()
    used = resolve.resolve_data(spec.fingerprint, data_dir=other, log=lines)
    assert used.source == "env" and not used.canonical and used.record()["canonical"] is False
    assert lines[0].startswith(f"note: {other} is not the pinned dataset")
    # A local dataset_path of a task copy comes next.
    monkeypatch.delenv(resolve.DATA_ENV)
    assert resolve.resolve_data(spec.fingerprint, task_path=other, log=Lines()).source == "path"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing", "is not a folder: build one with `modality-conflict build --out"),
        ("no_manifest", "has no readable manifest.json: it was not made by `modality-conflict build`"),
        ("truncated", "does not match its manifest.json (data/test-00000-of-00001.parquet: size"),
        ("unlisted", "holds data files its manifest.json does not list (data/test-extra.parquet)"),
        ("escape", "points outside the dataset folder"),
    ],
)
def test_a_bad_explicit_folder_is_one_line(
    reference: Path, tmp_path: Path, damage: str, message: str
) -> None:
    folder = tmp_path / "copy"
    if damage != "missing":
        shutil.copytree(reference, folder)
    shard = folder / "data/test-00000-of-00001.parquet"
    if damage == "no_manifest":
        (folder / "manifest.json").unlink()
    elif damage == "truncated":
        shard.write_bytes(shard.read_bytes()[:-1])
    elif damage == "unlisted":
        shutil.copy(shard, folder / "data/test-extra.parquet")
    elif damage == "escape":
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["files"]["../../x.parquet"] = {"sha256": "0" * 64, "size": 1}
        (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataResolutionError) as caught:
        resolve.resolve_data(CANONICAL.fingerprint, data_dir=folder, log=Lines())
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_pin_this_builder_does_not_know_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(
        DataResolutionError, match=r"pins a dataset with fingerprint 0{64}, which this version"
    ):
        resolve.resolve_data("0" * 64, root=tmp_path, log=Lines())
    assert not tmp_path.joinpath("datasets").exists()


def test_a_build_that_misses_the_pin_is_discarded(spec: DatasetSpec, tmp_path: Path) -> None:
    wrong = dataclasses.replace(spec, fingerprint="ab" * 32)
    with pytest.raises(DataResolutionError) as caught:
        resolve.ensure_dataset(wrong, root=tmp_path, workers=1, log=Lines())
    message = str(caught.value)
    assert f"the dataset built here has fingerprint {spec.fingerprint}, not the pinned {'ab' * 32}" in message
    assert "install the pinned versions" in message and "MODALITY_CONFLICT_DATA=DIR" in message
    assert [p.name for p in (tmp_path / "datasets").iterdir()] == [f".{wrong.cache_name}.lock"]


def test_another_builder_version_cannot_reproduce_the_pin(spec: DatasetSpec, tmp_path: Path) -> None:
    older = dataclasses.replace(spec, builder_version="0.9.0")
    with pytest.raises(DataResolutionError, match="made by builder 0.9.0, but this is builder"):
        resolve.ensure_dataset(older, root=tmp_path, workers=1, log=Lines())
    assert not (tmp_path / "datasets" / older.cache_name).exists()


def test_workers_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, spec: DatasetSpec, tmp_path: Path
) -> None:
    monkeypatch.setenv(resolve.WORKERS_ENV, "zero")
    with pytest.raises(
        DataResolutionError, match="MODALITY_CONFLICT_BUILD_WORKERS must be a positive integer"
    ):
        resolve.ensure_dataset(spec, root=tmp_path, log=Lines())


# --- real processes ---------------------------------------------------------------------------------------

_DRIVER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from modality_conflict.dataset_builder.canonical import DatasetSpec
    from modality_conflict.dataset_builder.resolve import ensure_dataset
    fields = json.loads(sys.argv[1])
    fields["software"] = tuple(map(tuple, fields["software"]))
    go = Path(sys.argv[3])
    while not go.exists():  # start together
        time.sleep(0.01)
    result = ensure_dataset(DatasetSpec(**fields), root=sys.argv[2], workers=int(sys.argv[4]))
    print(json.dumps(result.record()))
    """
)


def _start(spec: DatasetSpec, root: Path, go: Path, workers: int = 1) -> subprocess.Popen[str]:
    args = [json.dumps(dataclasses.asdict(spec)), str(root), str(go), str(workers)]
    return subprocess.Popen(
        [sys.executable, "-c", _DRIVER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_two_processes_at_once_build_the_cache_once(
    spec: DatasetSpec, reference: Path, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    runs = [_start(spec, tmp_path / "cache", go) for _ in range(2)]
    time.sleep(1.0)
    go.touch()
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    records = [json.loads(out) for out, _ in outputs]
    assert sorted(r["source"] for r in records) == ["built", "cache"]
    assert len({r["path"] for r in records}) == 1
    assert sum("building the dataset" in err for _, err in outputs) == 1
    folder = Path(records[0]["path"])
    assert _digests(folder) == _digests(reference)
    assert sorted(p.name for p in folder.parent.iterdir()) == [f".{spec.cache_name}.lock", spec.cache_name]


def test_a_waiting_process_takes_the_lock_holders_build(
    spec: DatasetSpec, reference: Path, tmp_path: Path
) -> None:
    import filelock

    root = tmp_path / "cache"
    folder = root / "datasets" / spec.cache_name
    folder.parent.mkdir(parents=True)
    lock = filelock.FileLock(str(folder.parent / f".{spec.cache_name}.lock"))
    go = tmp_path / "go"
    go.touch()
    with lock:
        waiting = _start(spec, root, go)
        assert waiting.stderr is not None
        first = waiting.stderr.readline()  # its first word: it found no cache and waits for the lock
        assert f"waiting for another process that is preparing {folder}" in first
        shutil.copytree(reference, folder)  # what the lock holder (another rank) produced
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err
    assert json.loads(out)["source"] == "cache"
    assert "building" not in err


def test_a_killed_build_leaves_no_half_written_cache(spec: DatasetSpec, tmp_path: Path) -> None:
    expected = tmp_path / "expected"
    build_dataset(expected, groups=8, seed=SEED, workers=1)
    bigger = dataclasses.replace(spec, groups=8, fingerprint=DatasetFolder(expected).fingerprint)
    root, go = tmp_path / "cache", tmp_path / "go"
    go.touch()
    killed = _start(bigger, root, go, workers=2)
    folder = root / "datasets" / bigger.cache_name
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(folder.parent.glob(f".{folder.name}.partial-*/data/*")):
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=60)
    assert not folder.exists()  # nothing that looks like a finished cache
    (partial,) = folder.parent.glob(f".{folder.name}.partial-*")
    assert not (partial / "manifest.json").exists()
    # The next run removes what the killed one left and builds the same bytes.
    used = resolve.ensure_dataset(bigger, root=root, workers=1, log=Lines())
    assert used.source == "built" and _digests(used.path) == _digests(expected)
    assert sorted(p.name for p in folder.parent.iterdir()) == [
        f".{bigger.cache_name}.lock",
        bigger.cache_name,
    ]


# --- full and read-only caches ----------------------------------------------------------------------------


def _resolve_in_child(spec: DatasetSpec, root: Path) -> list[str]:
    code = textwrap.dedent(
        f"""
        import json, sys
        from modality_conflict.dataset_builder.canonical import DatasetSpec
        from modality_conflict.dataset_builder.errors import DataResolutionError
        from modality_conflict.dataset_builder.resolve import ensure_dataset
        fields = json.loads({json.dumps(json.dumps(dataclasses.asdict(spec)))})
        fields["software"] = tuple(map(tuple, fields["software"]))
        try:
            print(json.dumps(ensure_dataset(DatasetSpec(**fields), root={str(root)!r}, workers=1).record()))
        except DataResolutionError as error:
            print(f"error: {{error}}", file=sys.stderr)
            sys.exit(1)
        """
    )
    return [sys.executable, "-c", code]


@needs_tiny_fs
def test_a_full_cache_disk_is_one_line_and_leaves_nothing(spec: DatasetSpec, tmp_path: Path) -> None:
    mount = tmp_path / "mnt"
    mount.mkdir()
    done = run_on_tiny_fs(mount, _resolve_in_child(spec, mount), size_kb=64)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    progress, error = done.stderr.splitlines()
    assert progress.startswith("[modality_conflict] building the dataset")
    assert error.startswith("error: cannot write ") and "no space left on the device" in error
    assert "set MODALITY_CONFLICT_CACHE=DIR to a writable folder with room" in error
    assert done.left == ["datasets", f"datasets/.{spec.cache_name}.lock"]


@needs_tiny_fs
def test_a_read_only_cache_is_one_line(spec: DatasetSpec, tmp_path: Path) -> None:
    mount = tmp_path / "mnt"
    mount.mkdir()
    done = run_on_tiny_fs(mount, _resolve_in_child(spec, mount), read_only=True)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: the dataset cache is not writable: cannot write")
    assert "read-only file system" in done.stderr and "set MODALITY_CONFLICT_CACHE=DIR" in done.stderr


# --- the pinned Hub commit --------------------------------------------------------------------------------


class FakeHub:
    """The two Hub endpoints a download uses: dataset info at a revision, and file contents."""

    def __init__(self, repo_id: str, files: dict[str, bytes], revision: str = COMMIT) -> None:
        self.repo_id, self.files, self.revision = repo_id, files, revision
        self.requests: list[tuple[str, str]] = []

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        self.requests.append((request.method, path))
        info = f"/api/datasets/{self.repo_id}/revision/"
        if path.startswith(info):
            if path[len(info) :] != self.revision:
                return httpx2.Response(
                    404, headers={"X-Error-Code": "RevisionNotFound"}, json={"error": "Invalid rev id"}
                )
            siblings = [{"rfilename": name} for name in self.files]
            return httpx2.Response(200, json={"id": self.repo_id, "sha": self.revision, "siblings": siblings})
        resolve_prefix = f"/datasets/{self.repo_id}/resolve/{self.revision}/"
        if path.startswith(resolve_prefix) and path[len(resolve_prefix) :] in self.files:
            body = self.files[path[len(resolve_prefix) :]]
            headers = {
                "X-Repo-Commit": self.revision,
                "ETag": f'"{hashlib.sha256(body).hexdigest()}"',
                "Content-Length": str(len(body)),
            }
            return httpx2.Response(200, headers=headers, content=b"" if request.method == "HEAD" else body)
        return httpx2.Response(404, headers={"X-Error-Code": "EntryNotFound"}, json={"error": "not found"})


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    yield
    huggingface_hub.set_client_factory(huggingface_hub.utils._http.default_client_factory)


def _serve(hub: FakeHub) -> None:
    huggingface_hub.set_client_factory(
        lambda: httpx2.Client(
            transport=httpx2.MockTransport(hub.handle),
            event_hooks={"request": [hf_request_event_hook]},
            follow_redirects=True,
        )
    )


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_the_pinned_hub_commit_is_downloaded_verified_and_cached(
    online: None, spec: DatasetSpec, reference: Path, tmp_path: Path
) -> None:
    published = dataclasses.replace(spec, repo_id="someone/colors", revision=COMMIT)
    hub = FakeHub("someone/colors", _files(reference))
    _serve(hub)
    lines = Lines()
    used = resolve.ensure_dataset(published, root=tmp_path, workers=1, log=lines)
    assert (used.source, used.revision, used.canonical) == ("hub", COMMIT, True)
    assert _digests(used.path) == _digests(reference)  # no download metadata left in the folder
    assert lines == [f"downloading the pinned dataset someone/colors@{COMMIT[:12]} into {used.path}"]
    hub.requests.clear()
    again = resolve.ensure_dataset(published, root=tmp_path, workers=1, log=Lines())
    assert (again.source, again.revision) == ("cache", COMMIT) and hub.requests == []


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing_revision", "the pinned Hub commit someone/colors@fedcba987654 is not available"),
        ("other_content", "has fingerprint"),
        ("unreachable", "the Hub is unreachable"),
    ],
)
def test_without_the_hub_copy_the_dataset_is_built(
    online: None, spec: DatasetSpec, reference: Path, tmp_path: Path, case: str, message: str
) -> None:
    published = dataclasses.replace(spec, repo_id="someone/colors", revision=COMMIT)
    files = _files(reference)
    hub = FakeHub("someone/colors", files, revision="0" * 40 if case == "missing_revision" else COMMIT)
    if case == "other_content":
        other = tmp_path / "other"
        build_dataset(other, groups=1, seed=9, workers=1)
        hub.files = _files(other)
    if case == "unreachable":

        def refuse(request: httpx2.Request) -> httpx2.Response:
            raise httpx2.ConnectError("name resolution failed")

        hub.handle = refuse  # type: ignore[method-assign]
    _serve(hub)
    lines = Lines()
    used = resolve.ensure_dataset(published, root=tmp_path / "cache", workers=1, log=lines)
    assert used.source == "built" and _digests(used.path) == _digests(reference)
    assert message in lines.text() and "building instead" in lines.text()
    assert "the Hub copy is out of reach" in lines.text()


def test_offline_or_unpublished_never_asks_the_hub(
    online: None, spec: DatasetSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = FakeHub("someone/colors", {})
    _serve(hub)
    unpublished = dataclasses.replace(spec, repo_id="someone/colors", revision="unpublished")
    assert resolve.ensure_dataset(unpublished, root=tmp_path / "a", workers=1, log=Lines()).source == "built"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    published = dataclasses.replace(unpublished, revision=COMMIT)
    assert resolve.ensure_dataset(published, root=tmp_path / "b", workers=1, log=Lines()).source == "built"
    assert hub.requests == []
