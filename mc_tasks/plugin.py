"""lmms-eval discovery: the ``lmms_eval.models`` entry point registers the models and installs the patches of
lmms-eval (:mod:`~modality_conflict.mc_tasks.lmms_eval_patches`) with this module's task discovery and data
resolution: a task whose ``metadata`` pins one of this project's datasets reads a verified local folder
(:mod:`modality_conflict.dataset_builder.resolve`) and gets exactly the manifest's shards, parsed from the
checked bytes, never ``datasets.load_dataset`` (which would follow the card's ``configs`` and reuse an
unchecked Arrow cache). Other tasks are left alone; what was used is recorded in the task's ``metadata``.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

from modality_conflict.dataset_builder.canonical import (
    CANONICAL_BY_KIND,
    METADATA_KEY,
    PinError,
    spec_for_kind,
)
from modality_conflict.dataset_builder.resolve import DATA_ENV
from modality_conflict.mc_tasks.task_config import TASKS_DIR

MODEL_ID = "modality_conflict_hf"
MODEL_CLASS_PATH = "modality_conflict.models.hf_model.ModalityConflictHF"
SERVED_MODEL_ID = "modality_conflict_openai"
SERVED_MODEL_CLASS_PATH = "modality_conflict.models.served_model.ModalityConflictOpenAI"
# Hub-only options that mean nothing for a local folder.
_HUB_KWARGS = ("revision", "token")


def task_dirs() -> list[str]:
    """The task folders to index: the package's own."""
    return [str(TASKS_DIR)]


def with_project_tasks(include_path: str | list[str] | None) -> list[str]:
    """``--include_path`` followed by the project's task folders (a user's own copy of a task wins)."""
    paths = [include_path] if isinstance(include_path, str) else list(include_path or [])
    return paths + [p for p in task_dirs() if p not in paths]


def pinned_fingerprint(config: Any) -> str | None:
    """The fingerprint of the pin (``dataset_builder/pins.json``) that a task config's
    ``metadata.modality_conflict_dataset.dataset`` names, or None for other tasks; a ``PinError`` when it
    names no pin."""
    metadata = getattr(config, "metadata", None)
    entry = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    if entry is None:
        return None
    name = entry.get("dataset") if isinstance(entry, dict) else None
    if not isinstance(name, str):
        raise PinError(
            f"task {getattr(config, 'task', '?')}: metadata.{METADATA_KEY} must name its dataset "
            f"(dataset: one of {sorted(CANONICAL_BY_KIND)}), got {entry!r}"
        )
    return spec_for_kind(name).fingerprint


def _local_dataset_path(path: Any) -> Path | None:
    """``dataset_path`` when it names a local folder (a task copy made by ``modality-conflict tasks``)."""
    if not isinstance(path, str) or not path:
        return None
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() or candidate.is_dir() else None


@functools.cache
def _resolve_once(pinned: str, task_path: str | None, data_env: str | None, cache: str) -> Any:
    from modality_conflict.dataset_builder.resolve import resolve_data

    return resolve_data(pinned, data_dir=data_env, task_path=task_path, root=cache)


def task_dataset_name(config: Any) -> str | None:
    """The dataset (manifest name) a task config reads, from its ``metadata.dataset``."""
    metadata = getattr(config, "metadata", None)
    name = metadata.get("dataset") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) else None


def data_folders(data_dir: Path) -> dict[str, Path]:
    """The dataset folders a ``--data`` folder (one dataset folder, or a folder of them) holds, by dataset;
    empty for one dataset folder that cannot be read, whose own check then names what is wrong."""
    from modality_conflict.dataset_builder.folder import dataset_folders, is_one_dataset_folder
    from modality_conflict.dataset_builder.resolve import DataResolutionError

    if is_one_dataset_folder(Path(data_dir)):
        try:
            return dataset_folders(Path(data_dir))
        except (FileNotFoundError, OSError, ValueError):
            return {}
    try:
        return dataset_folders(Path(data_dir))
    except FileNotFoundError as error:
        raise DataResolutionError(str(error)) from None


def _explicit_folder(data_dir: str, dataset: str | None) -> str:
    """The folder of ``dataset`` in ``data_dir``: itself, or the dataset folder it holds for ``dataset``."""
    from modality_conflict.dataset_builder.resolve import DataResolutionError

    folders = data_folders(Path(data_dir))
    if not folders:
        return data_dir  # resolution checks it and names what is wrong
    if dataset is None:
        return data_dir if len(folders) != 1 else str(next(iter(folders.values())))
    if dataset not in folders:
        held = ", ".join(f"{name} ({path})" for name, path in sorted(folders.items()))
        kind = "--dataset attribute " if "attribute" in dataset else ""
        raise DataResolutionError(
            f"{DATA_ENV}={data_dir} holds no {dataset} folder (it holds {held}): build one with "
            f"`modality-conflict build {kind}--out {Path(data_dir) / dataset}` beside it (a folder of "
            "dataset folders), or run only the tasks of the data it holds"
        )
    return str(folders[dataset])


def resolve_task_data(config: Any) -> Any:
    """The ``ResolvedData`` of a task that pins a dataset (None for others), once per process for the same
    inputs; from a ``MODALITY_CONFLICT_DATA`` holding several dataset folders, the task's own."""
    import os

    from modality_conflict.dataset_builder.resolve import cache_root

    pinned = pinned_fingerprint(config)
    if pinned is None:
        return None
    task_path = _local_dataset_path(getattr(config, "dataset_path", None))
    data_env = os.environ.get(DATA_ENV) or None
    if data_env is not None:
        data_env = _explicit_folder(data_env, task_dataset_name(config))
    return _resolve_once(pinned, None if task_path is None else str(task_path), data_env, str(cache_root()))


def _running_lmms_eval_cli() -> bool:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", "") or ""
    return name.startswith("lmms_eval") or Path(sys.argv[0] if sys.argv else "").name in (
        "lmms-eval",
        "lmms_eval",
    )


def fail(error: Exception) -> None:
    """Under the lmms-eval command line, one line and exit status 1 (lmms-eval would print a traceback and
    exit 0); called from Python, the exception itself."""
    if _running_lmms_eval_cli():
        print(f"error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(1)
    raise error


def local_dataset_kwargs(dataset_kwargs: Any) -> dict[str, Any]:
    """A task's ``dataset_kwargs`` for a local folder: without the Hub-only options."""
    return {k: v for k, v in dict(dataset_kwargs or {}).items() if k not in _HUB_KWARGS}


def interrupted(interrupt: KeyboardInterrupt) -> None:
    """Under the lmms-eval command line, Ctrl-C or SIGTERM while the data is prepared is one line (the
    build has already removed what it left half-written) and the usual exit status; else re-raised."""
    if not _running_lmms_eval_cli():
        raise interrupt
    terminated = "SIGTERM" in str(interrupt)
    print(
        f"interrupted ({'SIGTERM' if terminated else 'SIGINT'}) while preparing the dataset: nothing "
        "half-written was kept; the next run prepares it again",
        file=sys.stderr,
        flush=True,
    )
    raise SystemExit(143 if terminated else 130)


def load_verified_rows(task: Any, resolved: Any) -> None:
    """Give an lmms-eval task the verified rows of a resolved folder as its own ``download`` would leave them:
    ``dataset`` after ``process_docs``, ``dataset_no_image`` without image columns (unless asked for)."""
    import datasets

    from modality_conflict.dataset_builder.folder import DatasetFolder

    config = task.config
    dataset = DatasetFolder(resolved.path).splits(resolved.fingerprint)
    evaluated = {config.training_split, config.validation_split, config.test_split, config.fewshot_split}
    if config.process_docs is not None:
        for split in [name for name in dataset if name in evaluated]:
            dataset[split] = config.process_docs(dataset[split])
    task.dataset = dataset
    if getattr(config, "process_results_use_image", False):
        task.dataset_no_image = dataset
        return
    task.dataset_no_image = datasets.DatasetDict(
        {
            name: split.remove_columns(
                [key for key, feature in split.features.items() if isinstance(feature, datasets.Image)]
            )
            for name, split in dataset.items()
        }
    )


def install_patches() -> None:
    """Install the patches of lmms-eval with this module's discovery and data resolution (idempotent)."""
    from modality_conflict.dataset_builder.builder import sigterm_as_interrupt
    from modality_conflict.mc_tasks.lmms_eval_patches import TaskHooks, install_all

    install_all(
        TaskHooks(
            task_paths=with_project_tasks,
            resolve_data=resolve_task_data,
            fail=fail,
            local_kwargs=local_dataset_kwargs,
            load_rows=load_verified_rows,
            signal_guard=sigterm_as_interrupt,
            interrupted=interrupted,
        )
    )


def lmms_eval_manifests() -> list[Any]:
    """Entry-point payload: the project's models (in-process and served), and (as a side effect) the patches
    of lmms-eval that add task discovery, data resolution and the report file (:func:`install_patches`)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    install_patches()
    return [
        ModelManifest(model_id=MODEL_ID, simple_class_path=MODEL_CLASS_PATH),
        ModelManifest(model_id=SERVED_MODEL_ID, simple_class_path=SERVED_MODEL_CLASS_PATH),
    ]
