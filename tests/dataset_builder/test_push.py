"""`push`: the real ``HfApi`` code runs, with the Hub replaced at the HTTP layer (an httpx transport).

huggingface_hub 2.x sends every request through one shared ``httpx2.Client`` built by a factory that
``set_client_factory`` replaces; the fake Hub below is that client's transport. Nothing here reaches a
network. The one test that needs the real Hub is marked ``integration`` and skipped by default.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import huggingface_hub
import pytest
from huggingface_hub.utils._http import hf_request_event_hook

from modality_conflict.cli.main import main as cli_main
from modality_conflict.dataset_builder import canonical
from modality_conflict.dataset_builder.builder import build_dataset
from modality_conflict.dataset_builder.canonical import CANONICAL_ATTRIBUTE
from modality_conflict.dataset_builder.errors import DatasetValidationError, PushError
from modality_conflict.dataset_builder.folder import DatasetFolder
from modality_conflict.dataset_builder.push import PinMismatchError, PushAuthError, push_dataset

COMMIT_SHA = "0123456789abcdef0123456789abcdef01234567"
FILES = ["data/test-00000-of-00001.parquet", "README.md", "manifest.json"]


@dataclass
class FakeHub:
    """Just enough of the Hub's HTTP API for create_repo, create_branch, list_repo_files and create_commit."""

    remote_files: list[str] = field(default_factory=list)
    lfs_for_parquet: bool = False
    fail: dict[str, Any] = field(default_factory=dict)  # endpoint name -> status code or exception
    requests: list[tuple[str, str]] = field(default_factory=list)
    commits: list[list[dict[str, Any]]] = field(default_factory=list)
    lfs_store: dict[str, bytes] = field(default_factory=dict)
    created: list[dict[str, Any]] = field(default_factory=list)
    branches: list[str] = field(default_factory=list)

    def _maybe_fail(self, name: str, request: httpx2.Request) -> httpx2.Response | None:
        failure = self.fail.get(name)
        if failure is None:
            return None
        if isinstance(failure, int):
            return httpx2.Response(failure, json={"error": f"{name} refused"}, request=request)
        raise failure

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        self.requests.append((request.method, path))
        if request.url.host == "uploads.example":
            self.lfs_store[path.rsplit("/", 1)[-1]] = request.read()
            return httpx2.Response(200, request=request)
        if path == "/api/repos/create":
            if (bad := self._maybe_fail("create", request)) is not None:
                return bad
            self.created.append(json.loads(request.content))
            return httpx2.Response(200, json={"url": "https://huggingface.co/datasets/user/colors"})
        if path == "/api/validate-yaml":
            return httpx2.Response(200, json={})
        if "/branch/" in path:
            self.branches.append(path.rsplit("/", 1)[-1])
            return httpx2.Response(200, json={})
        if "/tree/" in path:
            entries = [{"type": "file", "path": p, "oid": "f" * 40, "size": 1} for p in self.remote_files]
            return httpx2.Response(200, json=entries)
        if "/preupload/" in path:
            if (bad := self._maybe_fail("preupload", request)) is not None:
                return bad
            files = json.loads(request.content)["files"]
            modes = [
                {
                    "path": f["path"],
                    "uploadMode": "lfs"
                    if self.lfs_for_parquet and f["path"].endswith(".parquet")
                    else "regular",
                    "shouldIgnore": False,
                }
                for f in files
            ]
            return httpx2.Response(200, json={"files": modes})
        if path.endswith(".git/info/lfs/objects/batch"):
            objects = json.loads(request.content)["objects"]
            actions = [
                {
                    "oid": o["oid"],
                    "size": o["size"],
                    "actions": {"upload": {"href": f"https://uploads.example/{o['oid']}"}},
                }
                for o in objects
            ]
            return httpx2.Response(200, json={"objects": actions})
        if "/commit/" in path:
            if (bad := self._maybe_fail("commit", request)) is not None:
                return bad
            self.commits.append([json.loads(line) for line in request.content.decode().splitlines()])
            revision = path.rsplit("/", 1)[-1]
            return httpx2.Response(
                200,
                json={
                    "commitUrl": f"https://huggingface.co/datasets/user/colors/commit/{COMMIT_SHA}",
                    "commitOid": COMMIT_SHA,
                    "revision": revision,
                },
            )
        return httpx2.Response(404, json={"error": "not found"}, request=request)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    fake = FakeHub()
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    # Test runs may set HF_HUB_OFFLINE=1; the fake Hub is not a network, so let requests through to it.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    huggingface_hub.set_client_factory(
        lambda: httpx2.Client(
            transport=httpx2.MockTransport(fake.handle),
            event_hooks={"request": [hf_request_event_hook]},
            follow_redirects=True,
        )
    )
    yield fake
    huggingface_hub.set_client_factory(huggingface_hub.utils._http.default_client_factory)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("push") / "ds"
    build_dataset(out, groups=2, seed=0, workers=1)
    return out


@pytest.fixture(autouse=True)
def pinned_to_the_test_build(dataset: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Pin (in memory) the tasks to the small test build, so that pushing it is publishing the pin."""
    fingerprint = DatasetFolder(dataset).fingerprint
    assert fingerprint is not None
    monkeypatch.setattr(
        canonical, "CANONICAL", dataclasses.replace(canonical.CANONICAL, fingerprint=fingerprint)
    )
    return fingerprint


def _committed_files(commit: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line["value"]["path"]: line for line in commit if line["key"] in ("file", "lfsFile")}


def test_push_makes_one_commit_with_every_file(
    hub: FakeHub, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["push", str(dataset), "--repo-id", "user/colors", "--private"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == COMMIT_SHA
    assert len(hub.commits) == 1
    commit = hub.commits[0]
    assert commit[0]["key"] == "header" and "2 groups, seed 0" in commit[0]["value"]["summary"]
    files = _committed_files(commit)
    assert sorted(files) == sorted(FILES)
    for name, line in files.items():
        assert base64.b64decode(line["value"]["content"]) == (dataset / name).read_bytes()
    assert len(hub.created) == 1
    assert hub.created[0]["type"] == "dataset" and hub.created[0]["visibility"] == "private"
    assert sum(1 for method, path in hub.requests if "/commit/" in path) == 1


def test_push_publishes_the_attribute_set_the_same_way(
    hub: FakeHub,
    attribute_dataset_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The attribute set is checked against its own pin, not the colour set's.
    assert cli_main(["push", str(attribute_dataset_dir), "--repo-id", "user/attributes"]) == 2
    assert "but the tasks pin " + CANONICAL_ATTRIBUTE.fingerprint in capsys.readouterr().err
    pinned = dataclasses.replace(
        canonical.CANONICAL_ATTRIBUTE, fingerprint=DatasetFolder(attribute_dataset_dir).fingerprint or ""
    )
    monkeypatch.setitem(canonical.CANONICAL_BY_KIND, "attribute", pinned)
    assert cli_main(["push", str(attribute_dataset_dir), "--repo-id", "user/attributes"]) == 0
    assert capsys.readouterr().out.strip() == COMMIT_SHA
    (commit,) = hub.commits
    assert "modality-conflict-attribute (4 groups, seed 0" in commit[0]["value"]["summary"]
    files = _committed_files(commit)
    assert sorted(files) == sorted(FILES)
    for name, line in files.items():
        assert base64.b64decode(line["value"]["content"]) == (attribute_dataset_dir / name).read_bytes()


def test_lfs_upload_uses_the_manifest_hashes(
    hub: FakeHub, dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Legacy LFS path (no Xet): parquet bytes go to the storage URL, the commit references their sha256.
    monkeypatch.setattr(huggingface_hub._commit_api, "is_xet_available", lambda: False)
    hub.lfs_for_parquet = True
    result = push_dataset(dataset, "user/colors")
    assert result.commit_sha == COMMIT_SHA
    line = _committed_files(hub.commits[0])[FILES[0]]
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert line["key"] == "lfsFile"
    assert line["value"]["oid"] == manifest["files"][FILES[0]]["sha256"]
    assert hub.lfs_store[line["value"]["oid"]] == (dataset / FILES[0]).read_bytes()


def test_branch_and_stale_shards(hub: FakeHub, dataset: Path) -> None:
    hub.remote_files = ["README.md", "data/test-00000-of-00003.parquet", "data/test-00000-of-00001.parquet"]
    result = push_dataset(dataset, "user/colors", revision="v2")
    assert hub.branches == ["v2"]
    assert result.revision == "v2"
    assert ("POST", "/api/datasets/user/colors/commit/v2") in hub.requests
    deletions = [line["value"]["path"] for line in hub.commits[0] if line["key"] == "deletedFile"]
    assert deletions == ["data/test-00000-of-00003.parquet"]
    assert result.deleted == ("data/test-00000-of-00003.parquet",)


def test_missing_token_explains_how_to_log_in(
    hub: FakeHub,
    dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(PushAuthError, match=r"hf auth login.*huggingface-cli login.*HF_TOKEN"):
        push_dataset(dataset, "user/colors")
    assert cli_main(["push", str(dataset), "--repo-id", "user/colors"]) == 2
    assert "error: no Hugging Face token found" in capsys.readouterr().err
    assert hub.requests == []


@pytest.mark.parametrize(
    ("fail", "message"),
    [
        ({"commit": 500}, r"refused the upload to user/colors@main \(HTTP 500\); no commit was made"),
        ({"preupload": 403}, r"HTTP 403\) \(check that the token has write access\); no commit was made"),
        ({"commit": httpx2.ConnectError("connection reset")}, "could not reach the Hub.*connection reset"),
        (
            {"create": httpx2.ConnectError("name resolution failed")},
            "could not reach the Hub.*name resolution",
        ),
    ],
)
def test_hub_failures_exit_non_zero_and_commit_nothing(
    hub: FakeHub, dataset: Path, fail: dict[str, Any], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.fail = fail
    with pytest.raises(PushError, match=message):
        push_dataset(dataset, "user/colors")
    assert hub.commits == []
    assert cli_main(["push", str(dataset), "--repo-id", "user/colors"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "error: " in captured.err and "Traceback" not in captured.err
    assert hub.commits == []


def test_offline_mode_is_a_clear_failure(
    hub: FakeHub, dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PushError, match="could not reach the Hub.*offline mode is enabled"):
        push_dataset(dataset, "user/colors")
    assert hub.requests == [] and hub.commits == []


def test_invalid_folder_is_never_uploaded(hub: FakeHub, dataset: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(dataset, broken)
    (broken / "README.md").write_text("no front matter\n")
    with pytest.raises(DatasetValidationError, match="manifest hash mismatch: README.md"):
        push_dataset(broken, "user/colors")
    with pytest.raises(PushError, match="USER/NAME"):
        push_dataset(dataset, "colors")
    assert hub.requests == []


def test_a_build_other_than_the_pinned_one_is_refused(
    hub: FakeHub,
    dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = tmp_path / "other"
    build_dataset(other, groups=2, seed=1, workers=1)
    with pytest.raises(PinMismatchError, match=r"has fingerprint \w+, but the tasks pin \w+ .*--update-pin"):
        push_dataset(other, "user/colors")
    monkeypatch.setattr(
        canonical, "CANONICAL", dataclasses.replace(canonical.CANONICAL, fingerprint="0" * 64)
    )
    assert cli_main(["push", str(dataset), "--repo-id", "user/colors"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pass --update-pin to publish it" in err
    assert hub.requests == [] and hub.commits == []


def test_update_pin_publishes_and_pins_the_tasks_to_the_new_commit(
    hub: FakeHub,
    dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pins_copy = tmp_path / "pins.json"
    pins_copy.write_bytes(canonical.PINS_PATH.read_bytes())
    monkeypatch.setattr(canonical, "PINS_PATH", pins_copy)
    monkeypatch.setattr(
        canonical, "CANONICAL", dataclasses.replace(canonical.CANONICAL, fingerprint="0" * 64)
    )
    fingerprint = DatasetFolder(dataset).fingerprint
    assert cli_main(["push", str(dataset), "--repo-id", "user/colors", "--update-pin"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == COMMIT_SHA
    assert f"pinned user/colors@{COMMIT_SHA} (fingerprint {fingerprint}) in {pins_copy}" in captured.err
    assert len(hub.commits) == 1
    pinned = canonical.read_pins(pins_copy)
    color = pinned["color"]
    assert (color.repo_id, color.revision, color.fingerprint) == ("user/colors", COMMIT_SHA, fingerprint)
    assert json.loads((dataset / "manifest.json").read_text())["software"] == dict(color.software)
    assert pinned["attribute"] == canonical.CANONICAL_ATTRIBUTE  # only the pushed kind's pin changed


@pytest.mark.integration
@pytest.mark.skipif(
    os.environ.get("MC_RUN_INTEGRATION") != "1" or not os.environ.get("MC_TEST_REPO_ID"),
    reason="needs the real Hub: set MC_RUN_INTEGRATION=1, MC_TEST_REPO_ID=user/name and a write token",
)
def test_push_to_the_real_hub(dataset: Path) -> None:
    from huggingface_hub import HfApi

    repo_id = os.environ["MC_TEST_REPO_ID"]
    result = push_dataset(dataset, repo_id, revision="mc-integration-test", private=True)
    files = set(HfApi().list_repo_files(repo_id, repo_type="dataset", revision=result.commit_sha))
    assert set(FILES) <= files
    remote = HfApi().hf_hub_download(
        repo_id, "manifest.json", repo_type="dataset", revision=result.commit_sha
    )
    assert Path(remote).read_bytes() == (dataset / "manifest.json").read_bytes()
