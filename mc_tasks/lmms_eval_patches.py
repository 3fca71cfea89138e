"""Every change this project makes to lmms-eval 0.7.3, each where no lmms-eval mechanism serves.

The ``lmms_eval.models`` entry point (:func:`modality_conflict.mc_tasks.plugin.lmms_eval_manifests`) installs
them in every lmms-eval process, handing over what they call (:class:`TaskHooks`); each wraps one method,
calls the original and is idempotent. :data:`PATCHES` says what each relies on, and
``tests/mc_tasks/test_lmms_eval_patches.py`` fails with the method's name when lmms-eval changes it.

ARCHITECTURE.md lists each patch, what it adds and why no lmms-eval mechanism serves.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from modality_conflict.dataset_builder.canonical import USED_KEY
from modality_conflict.dataset_builder.errors import ModalityConflictError
from modality_conflict.mc_tasks import report_file

_MARK = "_modality_conflict"


@dataclass(frozen=True)
class TaskHooks:
    """What the patches call (see :func:`modality_conflict.mc_tasks.plugin.install_patches`)."""

    task_paths: Callable[[Any], list[str]]
    resolve_data: Callable[[Any], Any]
    fail: Callable[[Exception], None]
    local_kwargs: Callable[[Any], dict[str, Any]]
    load_rows: Callable[[Any, Any], None]
    signal_guard: Callable[[], AbstractContextManager[None]]
    interrupted: Callable[[KeyboardInterrupt], None]


@dataclass(frozen=True)
class Patch:
    """One patched lmms-eval method: where it lives, the parameters the wrapper passes on, and the calls
    or attributes of lmms-eval that the patch relies on (each must stand in the named source)."""

    module: str
    owner: str
    method: str
    parameters: tuple[str, ...]
    relies_on: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.owner}.{self.method}"

    def target(self) -> Any:
        return getattr(importlib.import_module(self.module), self.owner)


PATCHES: tuple[Patch, ...] = (
    Patch(
        "lmms_eval.tasks",
        "TaskManager",
        "initialize_tasks",
        ("self", "include_path", "include_defaults"),
        relies_on=(("TaskManager.__init__", "self.initialize_tasks("),),
    ),
    Patch(
        "lmms_eval.api.task",
        "ConfigurableTask",
        "download",
        ("self", "dataset_kwargs"),
        relies_on=(
            ("ConfigurableTask.__init__", "self.download("),
            ("ConfigurableTask.download", "self.DATASET_PATH"),
            # What the original leaves for the rest of the task, which the patch sets itself.
            ("ConfigurableTask.download", "self.dataset = "),
            ("ConfigurableTask.download", "self.dataset_no_image = "),
            ("ConfigurableTask.download", "self.config.process_docs("),
        ),
    ),
    Patch(
        "lmms_eval.evaluator_utils",
        "TaskOutput",
        "calculate_aggregate_metric",
        ("self", "bootstrap_iters"),
        relies_on=(("TaskOutput.calculate_aggregate_metric", "self.sample_metrics"),),
    ),
    Patch(
        "lmms_eval.loggers.evaluation_tracker",
        "EvaluationTracker",
        "save_results_aggregated",
        ("self", "results", "samples", "datetime_str"),
        relies_on=(("EvaluationTracker.save_results_aggregated", "self.date_id"),),
    ),
)
_BY_METHOD = {patch.method: patch for patch in PATCHES}


def _install(method: str, make_wrapper: Callable[[Any], Callable[..., Any]]) -> None:
    owner = _BY_METHOD[method].target()
    original = getattr(owner, method)
    if getattr(original, _MARK, False):
        return
    wrapper = functools.wraps(original)(make_wrapper(original))
    setattr(wrapper, _MARK, True)
    setattr(owner, method, wrapper)


def _index_project_tasks(hooks: TaskHooks, original: Any) -> Callable[..., Any]:
    def initialize_tasks(self: Any, include_path: Any = None, include_defaults: bool = True) -> Any:
        paths = hooks.task_paths(include_path)
        return original(self, include_path=paths, include_defaults=include_defaults)

    return initialize_tasks


def _resolve_pinned_data(hooks: TaskHooks, original: Any) -> Callable[..., Any]:
    def download(self: Any, dataset_kwargs: Any = None) -> Any:
        try:
            with hooks.signal_guard():
                resolved = hooks.resolve_data(self.config)
            if resolved is None:
                return original(self, dataset_kwargs)
            self.DATASET_PATH = str(resolved.path)
            self.config.dataset_path = str(resolved.path)
            self.config.dataset_kwargs = hooks.local_kwargs(dataset_kwargs)
            # The rows of the manifest's shards, from the checked bytes: not the original's load_dataset.
            hooks.load_rows(self, resolved)
            self.config.metadata[USED_KEY] = resolved.record()
        except ModalityConflictError as error:
            hooks.fail(error)
        except KeyboardInterrupt as interrupt:
            hooks.interrupted(interrupt)
        return None

    return download


def _keep_summary(original: Any) -> Callable[..., Any]:
    def calculate_aggregate_metric(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = original(self, *args, **kwargs)
        report_file.keep_reports(self)
        return out

    return calculate_aggregate_metric


def _write_report_file(original: Any) -> Callable[..., Any]:
    def save_results_aggregated(self: Any, results: dict, samples: dict, datetime_str: str) -> Any:
        out = original(self, results=results, samples=samples, datetime_str=datetime_str)
        report_file.write_reports(self, results, datetime_str)
        return out

    return save_results_aggregated


def install_all(hooks: TaskHooks) -> None:
    """Install every patch (idempotent)."""
    _install("initialize_tasks", functools.partial(_index_project_tasks, hooks))
    _install("download", functools.partial(_resolve_pinned_data, hooks))
    _install("calculate_aggregate_metric", _keep_summary)
    _install("save_results_aggregated", _write_report_file)
