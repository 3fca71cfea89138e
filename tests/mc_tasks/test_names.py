"""The task folder's YAMLs and the code name the same tasks, metrics and hooks."""

from __future__ import annotations

import importlib.util
import re
from typing import Any

import yaml

from modality_conflict.mc_tasks import task_logic
from modality_conflict.mc_tasks.names import (
    ATTRIBUTE_TASK,
    GROUP,
    GROUP_TASKS,
    HEADLINE_METRICS,
    MAIN_TASK,
    MAIN_TASKS,
    METRIC_NAMES,
    RECORD_KEY,
    REQUIRED_METRICS,
    TASK_DATASETS,
    TASK_METRICS,
)
from modality_conflict.mc_tasks.plugin import TASKS_DIR


class _TaskLoader(yaml.SafeLoader):
    """Reads lmms-eval task YAMLs, keeping ``!function`` references as ("!function", "utils.name")."""


_TaskLoader.add_constructor("!function", lambda loader, node: ("!function", loader.construct_scalar(node)))


def _task_yaml(name: str) -> dict[str, Any]:
    return yaml.load((TASKS_DIR / name).read_text(encoding="utf-8"), Loader=_TaskLoader)


def _task_files() -> list[str]:
    return sorted(
        p.name for p in TASKS_DIR.iterdir() if p.suffix == ".yaml" or p.name.endswith("_template_yaml")
    )


def test_yaml_metric_list_is_the_codes_metric_list() -> None:
    listed = _task_yaml("_default_template_yaml")["metric_list"]
    assert [entry["metric"] for entry in listed] == list(METRIC_NAMES)
    assert [entry["higher_is_better"] for entry in listed] == [m.higher_is_better for m in TASK_METRICS]
    assert [entry["aggregation"] for entry in listed] == [
        ("!function", f"utils.aggregate_{name}") for name in METRIC_NAMES
    ]


def test_utils_shim_exposes_exactly_the_hooks_every_yaml_names() -> None:
    spec = importlib.util.spec_from_file_location("modality_conflict_task_utils", TASKS_DIR / "utils.py")
    assert spec is not None and spec.loader is not None
    shim = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shim)
    exposed = {name for name in vars(shim) if not name.startswith("_")}
    assert exposed == set(task_logic.__all__)
    assert all(callable(getattr(shim, name)) for name in exposed)
    named = set()
    for name in _task_files():
        named |= set(re.findall(r"!function utils\.(\w+)", (TASKS_DIR / name).read_text(encoding="utf-8")))
    assert named <= exposed, f"YAMLs name hooks the shim lacks: {sorted(named - exposed)}"
    assert {f"aggregate_{metric}" for metric in METRIC_NAMES} <= named


def test_group_and_task_names_match_the_yamls() -> None:
    group = _task_yaml("modality_conflict.yaml")
    assert group["group"] == GROUP and tuple(group["task"]) == GROUP_TASKS[GROUP]
    declared = {
        config["task"] for config in map(_task_yaml, _task_files()) if isinstance(config.get("task"), str)
    }
    assert MAIN_TASK in declared and set(GROUP_TASKS[GROUP]) <= declared


def test_metrics_are_the_headline_numbers_only() -> None:
    # lmms-eval prints every metric in one table: the headline numbers, each a number (or null).
    assert METRIC_NAMES == (
        "tfr", "vfr", "other_rate", "balance_point", "balance_point_ci_low", "balance_point_ci_high",
        "mean_dh", "n_conflicts",
    )  # fmt: skip
    assert "report" not in METRIC_NAMES and "entropy_estimator" not in METRIC_NAMES
    assert REQUIRED_METRICS == ("tfr", "vfr", "other_rate", "balance_point", "mean_dh", "n_conflicts")
    assert HEADLINE_METRICS[:3] == ("balance_point", "balance_point_ci_low", "balance_point_ci_high")
    assert set(METRIC_NAMES) <= set(HEADLINE_METRICS) and METRIC_NAMES[0] == RECORD_KEY
    assert len(set(METRIC_NAMES)) == len(METRIC_NAMES)


def _resolved(name: str) -> dict[str, Any]:
    """A task YAML with its ``include:`` chain applied, the way lmms-eval merges it (later keys win)."""
    config = _task_yaml(name)
    include = config.pop("include", None)
    return {**_resolved(include), **config} if include else config


def test_every_task_declares_its_dataset_and_answer_set() -> None:
    from modality_conflict.dataset_builder.specs import dataset_kind

    declared = {}
    for name in _task_files():
        config = _resolved(name)
        if isinstance(config.get("task"), str):
            declared[config["task"]] = config
    assert set(declared) == set(TASK_DATASETS)
    for task, config in declared.items():
        metadata = config["metadata"]
        assert metadata["dataset"] == TASK_DATASETS[task], task
        # The closed answer set the task declares is its dataset's ClassLabel names.
        assert tuple(metadata["answer_set"]) == dataset_kind(metadata["dataset"]).answer_labels, task
    assert {TASK_DATASETS[task] for task in MAIN_TASKS} == {TASK_DATASETS[t] for t in TASK_DATASETS}
    assert GROUP_TASKS[GROUP] == MAIN_TASKS and ATTRIBUTE_TASK in MAIN_TASKS


def test_every_task_with_repeats_hands_all_answers_to_process_results() -> None:
    # lmms-eval's default take_first filter would keep one of the K answers: entropy 0 for every prompt.
    sampled = {}
    for name in _task_files():
        config = _resolved(name)
        if isinstance(config.get("task"), str) and config.get("repeats", 1) > 1:
            sampled[config["task"]] = config
    assert {"modality_conflict_sampled", "modality_conflict_attribute_sampled"} <= set(sampled)
    for task, config in sampled.items():
        (entry,) = config["filter_list"]
        assert entry["name"] == "none" and len(entry["filter"]) == 1, task
