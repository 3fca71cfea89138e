"""Downloading the pinned Hub commit of a dataset into a cache folder, verified before it is used."""

from __future__ import annotations

import errno
import os
import shutil
import sys
from pathlib import Path

from modality_conflict.dataset_builder.atomic import temporary_sibling
from modality_conflict.dataset_builder.canonical import DatasetSpec
from modality_conflict.dataset_builder.data_source import Log, verify_folder
from modality_conflict.dataset_builder.errors import DataResolutionError
from modality_conflict.dataset_builder.folder import (
    MANIFEST_NAME,
    DatasetFolder,
    DatasetFolderError,
    confined_path,
)

#: Seconds to wait for the Hub's answer before building locally.
HUB_TIMEOUT_S = 10.0
# Beside a cache folder filled from the Hub: the commit it came from.
ORIGIN_SUFFIX = ".hub-revision"

_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def _hub_offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
        return True
    constants = sys.modules.get("huggingface_hub.constants")  # set when huggingface_hub was imported
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def fetch_from_hub(spec: DatasetSpec, folder: Path, log: Log) -> bool:
    """Download the pinned commit into ``folder``; False (with a log line) when it is not to be had."""
    if not spec.published or _hub_offline():
        return False
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{spec.repo_id}@{spec.revision[:12]}"
    staging = temporary_sibling(folder, "partial")
    try:
        log(f"downloading the pinned dataset {where} into {folder}")
        HfApi().dataset_info(spec.repo_id, revision=spec.revision, timeout=HUB_TIMEOUT_S)

        def fetch(name: str) -> None:
            hf_hub_download(
                spec.repo_id,
                name,
                repo_type="dataset",
                revision=spec.revision,
                local_dir=staging,
                etag_timeout=HUB_TIMEOUT_S,
            )

        fetch(MANIFEST_NAME)
        manifest = DatasetFolder(staging).manifest or {}
        for name in sorted(manifest.get("files") or {}):
            confined_path(staging, name)
            fetch(name)
        shutil.rmtree(staging / ".cache", ignore_errors=True)
        fingerprint = verify_folder(staging)
        if fingerprint != spec.fingerprint:
            log(
                f"the Hub copy {where} has fingerprint {fingerprint[:12]}, not the pinned "
                f"{spec.fingerprint[:12]}; building instead"
            )
            return False
        os.replace(staging, folder)
        folder.with_name(folder.name + ORIGIN_SUFFIX).write_text(spec.revision + "\n", encoding="utf-8")
        return True
    except (RevisionNotFoundError, RepositoryNotFoundError, EntryNotFoundError) as error:
        log(f"the pinned Hub commit {where} is not available ({_first_line(error)}); building instead")
    except HfHubHTTPError as error:
        log(f"the Hub refused the download of {where} ({_first_line(error)}); building instead")
    except (DataResolutionError, DatasetFolderError) as error:
        log(f"the Hub copy {where} is unusable ({_first_line(error)}); building instead")
    except OSError as error:
        if error.errno in _WRITE_ERRNOS:
            raise
        log(f"the Hub is unreachable ({_first_line(error)}); building instead")
    except Exception as error:  # noqa: BLE001 - httpx transport errors share no base class with OSError
        if type(error).__module__.split(".")[0] not in ("httpx", "httpx2", "httpcore"):
            raise
        log(f"the Hub is unreachable ({_first_line(error)}); building instead")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return False


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
