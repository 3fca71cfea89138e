"""Publish a built dataset folder to the Hugging Face Hub in a single commit.

The folder is validated first, and its content fingerprint must be the one the tasks pin
(:mod:`modality_conflict.dataset_builder.canonical`) unless the push is meant to change the pin. All
files (shards, dataset card, manifest) go into one ``create_commit`` call, together with deletions of
shards left by an earlier push that the new build no longer has, so a revision of the repository always
holds exactly one complete build: a failure before the commit leaves the repository as it was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from modality_conflict.dataset_builder import canonical
from modality_conflict.dataset_builder.errors import ModalityConflictError, PushError
from modality_conflict.dataset_builder.folder import CARD_NAME, DATA_DIR, MANIFEST_NAME, DatasetFolder
from modality_conflict.dataset_builder.specs import kind_of_manifest
from modality_conflict.dataset_builder.validate import validate_dataset

LOGIN_HINT = (
    "no Hugging Face token found: log in with `hf auth login` (or `huggingface-cli login`), "
    "or set the HF_TOKEN environment variable to a token with write access"
)


class PushAuthError(ModalityConflictError):
    """No credentials to publish with."""


class PinMismatchError(ModalityConflictError):
    """The folder is not the dataset the tasks pin, and the push was not meant to change the pin."""


@dataclass(frozen=True)
class PushResult:
    """Outcome of :func:`push_dataset`.

    ``commit_sha``: The new commit: pin it with ``modality-conflict pin-dataset`` (``pins.json``).
    ``deleted``: Stale paths removed in the same commit.
    ``pinned``: Files whose pin was rewritten (with ``update_pin``).
    """

    repo_id: str
    revision: str
    commit_sha: str
    commit_url: str
    files: tuple[str, ...]
    deleted: tuple[str, ...]
    fingerprint: str = ""
    pinned: tuple[str, ...] = ()


def _check_repo_id(repo_id: str) -> None:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts) or any(" " in p for p in parts):
        raise PushError(f"--repo-id must look like USER/NAME, got {repo_id!r}")


def push_dataset(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
    update_pin: bool = False,
) -> PushResult:
    """Validate ``folder`` and upload it to the dataset repository ``repo_id`` as one commit.

    ``folder``: A folder made by ``modality-conflict build``.
    ``repo_id``: ``USER/NAME`` of the dataset repository (created if missing).
    ``revision``: Branch to commit to (created from the default branch if missing); default ``main``.
    ``private``: Create the repository as private (no effect on an existing repository).
    ``token``: Hub token; default: the ``HF_TOKEN`` variable or the token saved by ``hf auth login``.
    ``commit_message``: First line of the commit; default names the build arguments.
    ``update_pin``: Publish a build whose fingerprint differs from the pin, then pin the tasks to the new
        commit and fingerprint (rewrites :mod:`~modality_conflict.dataset_builder.canonical` and the task
        template; run in a source checkout). Without it such a folder is refused.
    Raises ``DatasetValidationError``: the folder is not a valid build (nothing is uploaded).
    Raises ``PinMismatchError``: the folder's fingerprint is not the pinned one and ``update_pin`` is False
        (nothing is uploaded).
    Raises ``PushAuthError``: no token is available.
    Raises ``PushError``: the Hub could not be reached or refused a request; no commit was made.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    root = Path(folder)
    _check_repo_id(repo_id)
    validate_dataset(root)
    folder = DatasetFolder(root)
    manifest = folder.manifest or {}
    fingerprint = folder.fingerprint or ""
    kind = kind_of_manifest(manifest)
    kind_key = kind.key if kind is not None else "color"
    pinned = canonical.CANONICAL if kind_key == "color" else canonical.CANONICAL_BY_KIND[kind_key]
    if fingerprint != pinned.fingerprint and not update_pin:
        raise PinMismatchError(
            f"{root} has fingerprint {fingerprint}, but the tasks pin {pinned.fingerprint} "
            f"({pinned.describe()}): published, it would not be the data the tasks read; rebuild with "
            f"`modality-conflict build{' --dataset attribute' if kind_key == 'attribute' else ''} "
            f"--preset {pinned.preset} --seed {pinned.seed}`, or pass "
            "--update-pin to publish it and pin the tasks to it"
        )
    token = token or get_token()
    if not token:
        raise PushAuthError(LOGIN_HINT)
    files = tuple([*folder.data_files(), CARD_NAME, MANIFEST_NAME])
    args = manifest.get("arguments", {})
    message = commit_message or (
        f"Upload {manifest.get('dataset')} ({args.get('groups')} groups, seed {args.get('seed')}, "
        f"builder {manifest.get('builder_version')})"
    )
    branch = revision or "main"
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if branch != "main":
            api.create_branch(repo_id, repo_type="dataset", branch=branch, exist_ok=True)
        remote = api.list_repo_files(repo_id, repo_type="dataset", revision=branch)
        stale = tuple(sorted(p for p in remote if p.startswith(f"{DATA_DIR}/") and p not in files))
        operations = [CommitOperationDelete(path_in_repo=p) for p in stale]
        operations += [
            CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(root / name)) for name in files
        ]
        info = api.create_commit(
            repo_id,
            operations,
            commit_message=message,
            repo_type="dataset",
            revision=branch,
        )
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else "?"
        hint = " (check that the token has write access)" if status in (401, 403) else ""
        raise PushError(
            f"the Hub refused the upload to {repo_id}@{branch} (HTTP {status}){hint}; no commit was made: "
            f"{str(error).splitlines()[0]}"
        ) from error
    except Exception as error:  # noqa: BLE001 - httpx transport errors do not share a base with OSError
        transport = type(error).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore")
        if not (transport or isinstance(error, OSError)):
            raise
        raise PushError(
            f"could not reach the Hub to upload {repo_id}@{branch}; no commit was made: {error}"
        ) from error
    rewritten: list[Path] = []
    if update_pin:
        rewritten = canonical.write_pin(
            kind=kind_key,
            repo_id=repo_id,
            revision=str(info.oid),
            fingerprint=fingerprint,
            software=manifest.get("software") if isinstance(manifest.get("software"), dict) else None,
        )
    return PushResult(
        repo_id=repo_id,
        revision=branch,
        commit_sha=str(info.oid),
        commit_url=str(info.commit_url),
        files=files,
        deleted=stale,
        fingerprint=fingerprint,
        pinned=tuple(str(p) for p in rewritten),
    )
