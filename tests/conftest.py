"""Session fixtures shared by every test folder: tiny checkpoints, small datasets, one real lmms-eval run.

Everything here is built once per test session. Helpers that are plain modules (``fixtures_results``,
``lmms_eval_runs``) sit next to this file, which pytest puts on ``sys.path``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files holding a ``slow`` test run first, each file's tests in their own order.

    ``make test`` hands whole files to two workers in collection order (``--dist loadfile
    --no-loadscope-reorder``): with the long end-to-end files first and the short ones filling in at the
    end, neither worker sits idle while the other runs a long file.
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.path not in slow_files)


@pytest.fixture(scope="session", autouse=True)
def private_dataset_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A dataset cache of the session's own: no test reads or fills the user's ``~/.cache``."""
    from modality_conflict.dataset_builder.resolve import CACHE_ENV

    cache = tmp_path_factory.mktemp("dataset_cache")
    before = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(cache)
    yield cache
    if before is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = before


# ---------------------------------------------------------------------------------------------------------
# Tiny random-weight checkpoints (tiny_zoo), each built once per test session.
# ---------------------------------------------------------------------------------------------------------

TINY_ARCHITECTURES = ("llava", "qwen2_vl", "idefics3")


class TinyCheckpoints:
    """The zoo's checkpoint folders under one session directory, each built on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._folders: dict[str, Path] = {}

    def __getitem__(self, name: str) -> Path:
        if name not in self._folders:
            from tiny_zoo import build

            self._folders[name] = build(name, self.root / name)
        return self._folders[name]


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> TinyCheckpoints:
    """The checkpoints of :mod:`tiny_zoo` by name: ``tiny_checkpoints["gemma3"]``."""
    return TinyCheckpoints(tmp_path_factory.mktemp("tiny_zoo"))


@pytest.fixture(scope="session")
def tiny_llava_dir(tiny_checkpoints: TinyCheckpoints) -> Path:
    """A random-weight LLaVA-1.5 checkpoint folder (tiny CLIP + tiny Llama, 16 image tokens)."""
    return tiny_checkpoints["llava"]


@pytest.fixture(scope="session")
def tiny_qwen2_vl_dir(tiny_checkpoints: TinyCheckpoints) -> Path:
    """A random-weight Qwen2-VL checkpoint folder (4 image tokens)."""
    return tiny_checkpoints["qwen2_vl"]


@pytest.fixture(scope="session")
def tiny_idefics3_dir(tiny_checkpoints: TinyCheckpoints) -> Path:
    """A random-weight Idefics3 checkpoint folder (4 image tokens; the template writes the BOS)."""
    return tiny_checkpoints["idefics3"]


@pytest.fixture(scope="session", params=TINY_ARCHITECTURES)
def tiny_mllm_dir(request: pytest.FixtureRequest) -> Path:
    """Each tiny checkpoint folder in turn (parametrised over :data:`TINY_ARCHITECTURES`)."""
    return request.getfixturevalue(f"tiny_{request.param}_dir")


# ---------------------------------------------------------------------------------------------------------
# Real lmms-eval CLI runs on the small dataset preset. Every run is checked through its output files,
# since the lmms-eval CLI exits 0 even when evaluation fails.
# ---------------------------------------------------------------------------------------------------------

E2E_GROUPS = 12  # the small preset


@pytest.fixture(scope="session")
def small_dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small preset of the conflict dataset, built once through the real CLI."""
    from modality_conflict.cli.main import main

    out = tmp_path_factory.mktemp("dataset") / "color-conflict"
    assert main(["build", "--groups", str(E2E_GROUPS), "--seed", "0", "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="session")
def quick_dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four groups, every condition and control: for the paths that cost several calls per prompt."""
    from modality_conflict.cli.main import main

    out = tmp_path_factory.mktemp("dataset_quick") / "color-conflict"
    assert main(["build", "--groups", "4", "--seed", "1", "--out", str(out), "--quiet"]) == 0
    return out


ATTRIBUTE_GROUPS = 4  # two shape and two material groups: 164 rows, 24 images


@pytest.fixture(scope="session")
def attribute_dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small attribute set (every condition, control and visual tier), built once with two workers
    through the real CLI: rendering is the slow part, so every test that needs attribute rows uses it."""
    from modality_conflict.cli.main import main

    out = tmp_path_factory.mktemp("dataset_attribute") / "attribute-conflict"
    command = ["build", "--dataset", "attribute", "--groups", str(ATTRIBUTE_GROUPS), "--seed", "0"]
    assert main([*command, "--workers", "2", "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="session")
def datasets_dir(
    tmp_path_factory: pytest.TempPathFactory, small_dataset_dir: Path, attribute_dataset_dir: Path
) -> Path:
    """A folder holding both datasets (the small colour set and the attribute set), as ``--data`` takes it."""
    root = tmp_path_factory.mktemp("datasets")
    (root / "color").symlink_to(small_dataset_dir, target_is_directory=True)
    (root / "attribute").symlink_to(attribute_dataset_dir, target_is_directory=True)
    return root


@pytest.fixture(scope="session")
def tiny_lmms_eval_run(
    tmp_path_factory: pytest.TempPathFactory, datasets_dir: Path, tiny_llava_dir: Path
) -> Path:
    """lmms-eval ``--output_path`` of a run of the project's wrapper on the tiny LLaVA over the group (the
    colour and the attribute task), with sample logs.

    In float64, so that runs which batch the prompts differently agree up to rounding.
    """
    from lmms_eval_runs import run_lmms_eval

    out = tmp_path_factory.mktemp("run_wrapper")
    run_lmms_eval(
        out,
        model="modality_conflict_hf",
        model_args=f"pretrained={tiny_llava_dir},device=cpu,device_map=cpu,dtype=float64",
        tasks="modality_conflict",
        data_dir=datasets_dir,
    )
    return out
