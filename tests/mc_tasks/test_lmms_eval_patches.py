"""The patches of lmms-eval: each fails here, naming the method, when lmms-eval changes what it patches."""

from __future__ import annotations

import inspect

import pytest

from modality_conflict.mc_tasks import plugin
from modality_conflict.mc_tasks.lmms_eval_patches import PATCHES, Patch

_REVIEW = "review mc_tasks/lmms_eval_patches.py before using this lmms-eval"


def _unwrapped(patch: Patch) -> object:
    return inspect.unwrap(getattr(patch.target(), patch.method))


@pytest.mark.parametrize("patch", PATCHES, ids=lambda p: p.name)
def test_the_patched_signature_is_the_one_the_wrapper_passes_on(patch: Patch) -> None:
    found = tuple(inspect.signature(_unwrapped(patch)).parameters)
    assert found == patch.parameters, (
        f"lmms-eval changed {patch.name}: parameters {found}, the patch passes {patch.parameters}; {_REVIEW}"
    )


@pytest.mark.parametrize("patch", PATCHES, ids=lambda p: p.name)
def test_lmms_eval_still_does_what_the_patch_relies_on(patch: Patch) -> None:
    for where, code in patch.relies_on:
        owner_name, method = where.split(".")
        owner = patch.target() if owner_name == patch.owner else None
        assert owner is not None, where
        source = inspect.getsource(inspect.unwrap(getattr(owner, method)))
        assert code in source, (
            f"lmms-eval's {where} no longer has `{code}`, which {patch.name}'s patch relies on; {_REVIEW}"
        )


def test_installing_twice_wraps_each_method_once() -> None:
    plugin.install_patches()
    first = {patch.name: getattr(patch.target(), patch.method) for patch in PATCHES}
    plugin.install_patches()
    for patch in PATCHES:
        installed = getattr(patch.target(), patch.method)
        assert installed is first[patch.name] and getattr(installed, "_modality_conflict", False), patch.name
        assert inspect.unwrap(installed) is not installed, f"{patch.name} is not wrapped"
        assert not getattr(inspect.unwrap(installed), "_modality_conflict", False), (
            f"{patch.name} wrapped twice"
        )


def test_the_entry_point_installs_every_patch() -> None:
    from importlib.metadata import entry_points

    (entry,) = [e for e in entry_points(group="lmms_eval.models") if e.value.startswith("modality_conflict.")]
    manifests = entry.load()()
    assert [m.model_id for m in manifests] == [plugin.MODEL_ID, plugin.SERVED_MODEL_ID]
    for patch in PATCHES:
        assert getattr(getattr(patch.target(), patch.method), "_modality_conflict", False), patch.name
