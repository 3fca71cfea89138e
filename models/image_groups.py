"""Requests grouped by the images they show, each image decoded once.

:class:`DocumentStore` reads a ``datasets.Dataset`` split lazily and keys requests by their images'
encoded bytes; other documents are keyed by the pixels ``doc_to_visual`` returns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from modality_conflict.models.requests import ModelRequest, as_list

__all__ = ["DocumentStore", "image_fingerprint", "same_images"]


def image_fingerprint(image: Any) -> Hashable:
    """A key equal for images with the same mode, size and pixels (PIL images; others by identity)."""
    to_bytes = getattr(image, "tobytes", None)
    if not callable(to_bytes):
        return ("object", id(image))
    digest = hashlib.blake2b(to_bytes(), digest_size=16).hexdigest()
    return (getattr(image, "mode", None), tuple(getattr(image, "size", ())), digest)


def _same_pixels(a: Any, b: Any) -> bool:
    """Whether two PIL images of one mode and size hold the same pixels (compared in C, no copies)."""
    from PIL import ImageChops

    try:
        return ImageChops.difference(a, b).getbbox() is None
    except ValueError:  # a mode ImageChops does not handle
        return bool(a.tobytes() == b.tobytes())


def same_images(first: Sequence[Any], other: Sequence[Any]) -> bool:
    """Whether two image lists hold the same images (same mode, size and pixels, in order)."""
    if len(first) != len(other):
        return False
    for a, b in zip(first, other, strict=True):
        if a is b:
            continue
        if not callable(getattr(a, "tobytes", None)) or not callable(getattr(b, "tobytes", None)):
            return False
        if (a.mode, a.size) != (b.mode, b.size) or not _same_pixels(a, b):
            return False
    return True


def _callable_key(function: Any) -> Hashable:
    """``function`` itself when hashable (lmms-eval hands each request a new but equal bound method)."""
    try:
        hash(function)
    except TypeError:
        return ("object", id(function))
    return function


class _LazySplit:
    """A ``datasets.Dataset`` split read row by row without decoding, and the names of its image columns."""

    def __init__(self, dataset: Any, image_columns: tuple[str, ...]) -> None:
        self.view = dataset.with_format("python", lazy=True)
        self.image_columns = image_columns


def _lazy_split(dataset: Any) -> _LazySplit | None:
    """The lazy reader of ``dataset``, or None when it is not an unformatted ``datasets.Dataset``."""
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets comes with lmms-eval
        return None
    if not isinstance(dataset, datasets.Dataset) or dataset.format.get("type") is not None:
        return None
    columns = []
    for name, feature in dataset.features.items():
        if isinstance(feature, datasets.Image):
            columns.append(name)
        elif "Image(" in repr(feature):
            return None  # images nested in lists or structs: read whole rows
    return _LazySplit(dataset, tuple(columns))


class DocumentStore:
    """The documents of lmms-eval's ``{task: {split: documents}}``, read without decoding their images
    where the split allows it."""

    def __init__(self, task_dict: Mapping[str, Any]) -> None:
        self._task_dict = task_dict
        self._lazy: dict[tuple[str, str], _LazySplit | None] = {}
        self.decoded_images = 0
        """How many images were decoded (lazily read splits only)."""

    def _split(self, task: str, split: str) -> _LazySplit | None:
        key = (task, split)
        if key not in self._lazy:
            self._lazy[key] = _lazy_split(self._task_dict[task][split])
        return self._lazy[key]

    def document(self, task: str, split: str, doc_id: int) -> Mapping[str, Any]:
        """The document; a lazily decoded row when the split is a ``datasets.Dataset``."""
        lazy = self._split(task, split)
        return lazy.view[doc_id] if lazy is not None else self._task_dict[task][split][doc_id]

    def visual_key(self, request: ModelRequest) -> Hashable:
        """A key shared by requests whose ``doc_to_visual`` sees the same images (before checking them):
        the function and the encoded image columns of a lazily read row, else the images' pixels."""
        if request.doc_to_visual is None:
            return ("none",)
        lazy = self._split(request.task, request.split)
        if lazy is None:
            doc = self._task_dict[request.task][request.split][request.doc_id]
            return ("pixels", *(image_fingerprint(v) for v in as_list(request.doc_to_visual(doc))))
        row = lazy.view[request.doc_id]
        parts: list[Hashable] = ["encoded", request.task, request.split, _callable_key(request.doc_to_visual)]
        for column in lazy.image_columns:
            value = row.pa_table.column(column)[0].as_py()
            if value is None:
                parts.append(None)
            elif value.get("bytes") is not None:
                parts.append(hashlib.blake2b(value["bytes"], digest_size=16).hexdigest())
            else:
                parts.append(("path", value.get("path")))
        return tuple(parts)

    def group_visuals(self, members: Sequence[ModelRequest]) -> list[list[Any]]:
        """Each member's images from its ``doc_to_visual``, decoding every distinct stored image once."""
        decoded: dict[tuple[str, str, str, Hashable], Any] = {}
        out = []
        for request in members:
            if request.doc_to_visual is None:
                out.append([])
                continue
            lazy = self._split(request.task, request.split)
            if lazy is None:
                doc = self._task_dict[request.task][request.split][request.doc_id]
                out.append(as_list(request.doc_to_visual(doc)))
                continue
            row = lazy.view[request.doc_id]
            for column in lazy.image_columns:
                value = row.pa_table.column(column)[0].as_py()
                if value is None:
                    continue
                stored = value.get("bytes") if value.get("bytes") is not None else value.get("path")
                key = (request.task, request.split, column, stored)
                if key in decoded:
                    row[column] = decoded[key]
                else:
                    decoded[key] = row[column]
                    self.decoded_images += 1
            out.append(as_list(request.doc_to_visual(row)))
        return out
