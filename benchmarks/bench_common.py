"""Helpers shared by the benchmark scripts: machine description, offline settings and test fixtures.

Not a benchmark itself. The scripts in this folder import it as a sibling module (they are run as
``python benchmarks/<script>.py``, which puts this folder on ``sys.path``).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def write_report(report: dict[str, Any], out: Path) -> None:
    """Write a benchmark's JSON report, creating its folder."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


def set_offline_env() -> None:
    """Keep Hugging Face libraries off the network (the benchmarks only use local folders)."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """What the figures were measured on: CPU model, cores, memory, load and library versions.

    The load average is included because the absolute times move with whatever else the machine runs;
    the ratios measured within one run are what the goals are checked against.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "memory_gib": _memory_gib(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "lmms_eval": _version("lmms_eval"),
        "datasets": _version("datasets"),
        "numpy": _version("numpy"),
    }


def describe_machine(info: dict[str, Any]) -> str:
    """One line for the table header."""
    load = info.get("load_average_1_5_15")
    load_text = f", load {load[0]:.2f}" if load else ""
    return (
        f"{info['cpu_model']}, {info['usable_cpus']} cores, {info['memory_gib']} GiB RAM{load_text}; "
        f"Python {info['python']}, torch {info['torch']}, transformers {info['transformers']}, "
        f"lmms-eval {info['lmms_eval']}"
    )


# The tiny random-weight checkpoints are test code (tests/tiny_zoo), which the package does not ship.
TESTS_DIR = Path(__file__).resolve().parents[1] / "tests"
if str(TESTS_DIR) not in sys.path:
    sys.path.append(str(TESTS_DIR))

CHECKPOINTS = {
    "tiny": "tiny LLaVA (random weights; 3-layer, 64-wide Llama; tiny_zoo.build('llava'), seed 0)",
    "smollm2": "LLaVA around SmolLM2-135M-Instruct (real language model, random vision tower; "
    "smollm2_llava.build_smollm2_llava)",
}


def ensure_smollm2_llava(folder: Path) -> Path:
    """Build the SmolLM2-135M LLaVA checkpoint into ``folder`` unless it is already there."""
    if (folder / "config.json").exists() and any(folder.glob("*.safetensors")):
        return folder
    from modality_conflict.models.smollm2_llava import build_smollm2_llava

    return build_smollm2_llava(folder, seed=0)


def ensure_tiny_llava(folder: Path) -> Path:
    """Build the random-weight tiny LLaVA checkpoint into ``folder`` unless it is already there."""
    if (folder / "config.json").exists() and (folder / "model.safetensors").exists():
        return folder
    from tiny_zoo import build

    return build("llava", folder, seed=0)


def ensure_dataset(folder: Path, groups: int, seed: int = 0, workers: int = 1) -> Path:
    """Build the colour-conflict set with ``groups`` groups into ``folder`` (reused when already built)."""
    from modality_conflict.dataset_builder.builder import build_dataset

    build_dataset(folder, groups=groups, seed=seed, workers=workers)
    return folder


def lmms_eval_tasks(data_dir: Path, names: list[str]) -> dict[str, Any]:
    """lmms-eval's own task objects of ``names`` on the dataset in ``data_dir``, zero-shot, requests built."""
    os.environ["MODALITY_CONFLICT_DATA"] = str(data_dir)
    import lmms_eval.models  # noqa: F401  (loads the entry point that registers the project's tasks)
    from lmms_eval.tasks import TaskManager, get_task_dict

    tasks = get_task_dict(names, TaskManager())
    for task in tasks.values():
        task.set_config(key="num_fewshot", value=0)
        task.build_all_requests(limit=None, rank=0, world_size=1)
    return tasks
