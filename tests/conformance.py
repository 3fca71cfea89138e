"""Driving ``modality_conflict_hf`` the way lmms-eval does, on real dataset rows, while watching its model.

The wrapper is only used through lmms-eval's interface (``generate_until`` and ``loglikelihood`` on
``Instance`` objects whose arguments are the task's own ``doc_to_text`` / ``doc_to_visual``); what the
model receives and returns is observed with forward hooks, never taken from the wrapper's internals.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from lmms_eval.api.instance import Instance

from modality_conflict.mc_tasks import task_logic
from modality_conflict.models.hf_model import ModalityConflictHF

TASK, SPLIT = "modality_conflict_conformance", "test"
CONTINUATION = " red"

# Rows of the quick dataset (4 groups, seed 1): two images of different sizes (800x600 and 224x224), a
# conflict row, and text-only rows of each text tier, so that batched prompts differ in length.
VISION_TIERS, TEXT_TIERS = (0, 5), (0, 1, 2)


def task_generation_kwargs() -> dict[str, Any]:
    """The ``generation_kwargs`` of the generation tasks' own YAML (``_default_template_yaml``), which
    lmms-eval hands the wrapper unchanged when the task sets no ``until``."""
    import yaml

    from modality_conflict.mc_tasks.task_config import TASKS_DIR

    class TaskLoader(yaml.SafeLoader):
        """Reads lmms-eval's ``!function`` tags as plain strings."""

    TaskLoader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))
    template = (TASKS_DIR / "_default_template_yaml").read_text(encoding="utf-8")
    return dict(yaml.load(template, Loader=TaskLoader)["generation_kwargs"])


GREEDY = task_generation_kwargs()


def pick_docs(dataset_dir: Path) -> list[dict[str, Any]]:
    """Image rows first (vision-only, then one conflict row), then text-only rows."""
    import datasets

    table = datasets.load_dataset(str(dataset_dir), split="test")
    condition = table.features["condition"]
    rows: list[dict[str, Any]] = []
    wanted = [("vision_only", tier) for tier in VISION_TIERS] + [("conflict", None)]
    wanted += [("text_only", tier) for tier in TEXT_TIERS]
    for name, tier in wanted:
        for row in table:
            tier_key = "visual_tier" if name == "vision_only" else "text_tier"
            matches = condition.int2str(row["condition"]) == name and (tier is None or row[tier_key] == tier)
            if matches and row["control"] == 0:
                rows.append(row)
                break
    assert len(rows) == len(wanted), "the quick dataset lacks a row the conformance checks need"
    return rows


def is_image_doc(doc: dict[str, Any]) -> bool:
    return bool(task_logic.doc_to_visual(doc))


def instances(
    kind: str, docs: Sequence[dict[str, Any]], all_docs: Sequence[dict[str, Any]]
) -> list[Instance]:
    """Requests as lmms-eval builds them: ``(context, gen_kwargs or continuation, doc_to_visual, doc_id,
    task, split)``."""
    out = []
    for doc in docs:
        doc_id = next(i for i, d in enumerate(all_docs) if d["row_id"] == doc["row_id"])
        argument = dict(GREEDY) if kind == "generate_until" else CONTINUATION
        arguments = (task_logic.doc_to_text(doc), argument, task_logic.doc_to_visual, doc_id, TASK, SPLIT)
        metadata = {"task": TASK, "doc_id": doc_id, "repeats": 1, "split": SPLIT}
        out.append(Instance(request_type=kind, arguments=arguments, idx=0, metadata=metadata))
    return out


def make_wrapper(folder: Path, docs: Sequence[dict[str, Any]], **kwargs: Any) -> ModalityConflictHF:
    wrapper = ModalityConflictHF(pretrained=str(folder), device="cpu", **kwargs)
    wrapper.task_dict = {TASK: {SPLIT: list(docs)}}
    return wrapper


@dataclass
class Prefill:
    """One prompt pass of the model: the ids and mask it received and its last-position logits."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    logits: torch.Tensor

    def rows(self) -> list[list[int]]:
        """Each row's ids without padding."""
        if self.attention_mask is None:
            return self.input_ids.tolist()
        return [
            ids[mask.bool()].tolist() for ids, mask in zip(self.input_ids, self.attention_mask, strict=True)
        ]

    @property
    def padded(self) -> bool:
        return self.attention_mask is not None and bool((self.attention_mask == 0).any())


@contextlib.contextmanager
def watch_prefills(model: torch.nn.Module) -> Iterator[list[Prefill]]:
    """Record every forward pass that reads a whole prompt (decoding steps, one token each, are skipped)."""
    calls: list[Prefill] = []
    pending: dict[str, Any] = {}

    def before(_module: Any, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        pending.clear()
        if ids is not None and ids.shape[-1] > 1:
            pending.update(input_ids=ids.detach().clone(), attention_mask=kwargs.get("attention_mask"))

    def after(_module: Any, _args: tuple, _kwargs: dict, output: Any) -> None:
        if pending:
            mask = pending["attention_mask"]
            logits = output.logits[:, -1].detach().clone()
            calls.append(Prefill(pending["input_ids"], None if mask is None else mask.clone(), logits))
            pending.clear()

    handles = [
        model.register_forward_pre_hook(before, with_kwargs=True),
        model.register_forward_hook(after, with_kwargs=True),
    ]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def real_clock_says(day: datetime) -> Iterator[None]:
    """Make transformers' chat templates read ``day`` as today (outside any pinning the wrapper does)."""
    from transformers.utils import chat_template_utils

    class Clock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # noqa: ARG003
            return day

    original = chat_template_utils.datetime
    chat_template_utils.datetime = Clock
    try:
        yield
    finally:
        chat_template_utils.datetime = original


def leading_bos(ids: Sequence[int], bos_token_id: int | None) -> int:
    """How many BOS ids open a prompt (a ChatML BOS such as ``<|im_start|>`` also opens later turns)."""
    if bos_token_id is None:
        return 0
    return next((i for i, token in enumerate(ids) if token != bos_token_id), len(ids))
