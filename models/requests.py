"""lmms-eval requests as the wrapper sees them: what to answer, with how many images, among which answers.

A document with the benchmark's fields (:data:`BENCHMARK_FIELDS`) gets an envelope; another task's gets
plain text, so the wrapper can run other tasks in the same command.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modality_conflict.dataset_builder.errors import ModalityConflictError

ANSWER_CHOICES_FIELD = "answer_choices"
"""The dataset column holding a row's closed answer set (in the dataset's ClassLabel order)."""

BENCHMARK_FIELDS = (ANSWER_CHOICES_FIELD, "condition")
"""The columns every row of the benchmark's datasets has: its closed answer set and its condition."""


def is_benchmark_doc(doc: Any) -> bool:
    """Whether ``doc`` is a row of the benchmark (it has every field of :data:`BENCHMARK_FIELDS`)."""
    return isinstance(doc, Mapping) and all(doc.get(field) is not None for field in BENCHMARK_FIELDS)


def as_list(visual: Any) -> list[Any]:
    """``doc_to_visual``'s output flattened to a list of images."""
    if visual is None:
        return []
    if isinstance(visual, (list, tuple)):
        flat: list[Any] = []
        for item in visual:
            flat.extend(as_list(item))
        return flat
    return [visual]


@dataclass(frozen=True)
class ModelRequest:
    """One lmms-eval request with what the wrapper needs to know about its document.

    ``argument`` holds the generation kwargs (``generate_until``) or the continuation (``loglikelihood``);
    ``n_images`` is -1 until counted (see :func:`collect_requests`).
    """

    context: str
    argument: Any
    n_images: int
    doc_to_visual: Any
    doc_id: int
    task: str
    split: str
    answers: tuple[str, ...]
    benchmark: bool


def collect_requests(
    requests: Sequence[Any],
    task_dict: Mapping[str, Any],
    *,
    count_images: bool = True,
    read_document: Callable[[str, str, int], Any] | None = None,
) -> list[ModelRequest]:
    """Each request's context, argument, image count and candidate answers.

    Images are counted here and fetched again batch by batch, so at most one batch of them is held; with
    ``count_images=False`` nothing is decoded (``n_images`` -1).
    """
    out = []
    for request in requests:
        context, argument, doc_to_visual, doc_id, task, split = request.args[:6]
        doc = read_document(task, split, doc_id) if read_document else task_dict[task][split][doc_id]
        if not isinstance(argument, (str, dict)) and callable(argument):
            argument = argument(doc)  # a loglikelihood target given as a function of the document
        if not count_images:
            n_images = -1
        else:
            n_images = len(as_list(doc_to_visual(doc))) if doc_to_visual is not None else 0
        choices = doc.get(ANSWER_CHOICES_FIELD) if isinstance(doc, Mapping) else None
        answers = tuple(str(c) for c in choices) if choices else ()
        out.append(
            ModelRequest(
                context,
                argument,
                n_images,
                doc_to_visual,
                doc_id,
                task,
                split,
                answers,
                is_benchmark_doc(doc),
            )
        )
    return out


def fetch_visuals(request: ModelRequest, task_dict: Mapping[str, Any]) -> list[Any]:
    """The request's images, decoded now."""
    if request.n_images == 0:
        return []
    visuals = as_list(request.doc_to_visual(task_dict[request.task][request.split][request.doc_id]))
    if len(visuals) != request.n_images:
        raise ModalityConflictError(f"doc {request.doc_id}: doc_to_visual returned a different image count")
    return visuals


def batches(keys: Sequence[Hashable], lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Request indices grouped by key, longest prompts first, cut into batches of ``batch_size``."""
    groups: dict[Any, list[int]] = defaultdict(list)
    for index, key in enumerate(keys):
        groups[key].append(index)
    out = []
    for members in groups.values():
        members.sort(key=lambda i: -lengths[i])
        out += [members[i : i + batch_size] for i in range(0, len(members), batch_size)]
    return out
