"""Image-prefix sharing: on every architecture that shares, the answers equal those of whole prompts."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import datasets
import pytest
import support_matrix
import torch
from lmms_eval.api.instance import Instance
from PIL import Image
from tiny_zoo import ARCHITECTURES
from transformers import AutoConfig

from modality_conflict.dataset_builder.constants import COLORS
from modality_conflict.models.hf_model import ModalityConflictHF
from modality_conflict.models.image_groups import DocumentStore
from modality_conflict.models.requests import collect_requests
from modality_conflict.models.sharing import (
    SHARED_MODEL_TYPES,
    UNSHARED_MODEL_TYPES,
    fork_cache,
    sharing_support,
    split_encoded,
    split_prompts,
)

QUESTION = "What color is the circle? Please use one word to answer this question."
TEXTS = (
    QUESTION,
    "The circle is blue. " + QUESTION,
    "The circle's color is the same as a banana. The banana is yellow. " + QUESTION,
)
IMAGES = (Image.new("RGB", (64, 48), "red"), Image.new("RGB", (40, 40), "green"))
DOCS = [{"image": image, "text": text} for image in IMAGES for text in TEXTS]
DOCS += [{"image": None, "text": text} for text in TEXTS[1:]]
for _doc in DOCS:  # the benchmark's fields: its answer set and a condition
    _doc["answer_choices"] = list(COLORS)
    _doc["condition"] = "text_only" if _doc["image"] is None else "conflict"
GREEDY = {"max_new_tokens": 4, "temperature": 0, "do_sample": False, "until": ["\n\n"]}

# Every supported zoo checkpoint whose model type shares (the zoo's gemma3 and aya_vision have a 16-token
# attention window, shorter than their prompts: their forks are unpadded).
SHARING_ZOO = [
    name
    for name in support_matrix.cells("modality_conflict_hf", "supported")
    if ARCHITECTURES[name].model_type in SHARED_MODEL_TYPES
]
# A multimodal-RoPE family where the installed transformers shares prefixes, else LLaVA.
FORKED = "qwen2_vl" if "qwen2_vl" not in UNSHARED_MODEL_TYPES else "llava"
TOLERANCE = 1e-5  # float32
FEATURES = datasets.Features(
    {
        "image": datasets.Image(),
        "text": datasets.Value("string"),
        "answer_choices": datasets.List(datasets.Value("string")),
        "condition": datasets.Value("string"),
    }
)


def doc_to_visual(doc: dict[str, Any]) -> list[Any]:
    return [doc["image"]] if doc["image"] is not None else []


def _requests(
    docs: Sequence[dict[str, Any]], gen_kwargs: dict[str, Any], visual: Any = doc_to_visual
) -> list:
    return [
        Instance(
            "generate_until",
            (doc["text"], dict(gen_kwargs), visual, index, "mc", "test"),
            idx=0,
            metadata={"task": "mc", "doc_id": index, "repeats": 1},
        )
        for index, doc in enumerate(docs)
    ]


def _answer(folder: Path, docs: Any = DOCS, visual: Any = doc_to_visual, **kwargs: Any) -> tuple[Any, list]:
    wrapper = ModalityConflictHF(pretrained=str(folder), device="cpu", **kwargs)
    wrapper.task_dict = {"mc": {"test": docs}}
    rows = docs if isinstance(docs, list) else [{"text": text} for text in docs["text"]]
    responses = wrapper.generate_until(_requests(rows, GREEDY, visual))
    return wrapper, [json.loads(r) for r in responses]


def _assert_same_envelopes(shared: list[dict[str, Any]], whole: list[dict[str, Any]], tol: float) -> None:
    for a, b in zip(shared, whole, strict=True):
        assert a["text"] == b["text"]
        assert a["decode_steps"] == b["decode_steps"]
        assert a["entropy"] == pytest.approx(b["entropy"], abs=tol)
        assert a["answer_logprobs"] == pytest.approx(b["answer_logprobs"], abs=tol)
        assert a["lens"]["top1_ids"] == b["lens"]["top1_ids"]
        for key in ("answer_logits", "answer_logits_capitalized"):
            for left, right in zip(a["lens"][key], b["lens"][key], strict=True):
                assert left == pytest.approx(right, abs=tol)


def _widened(folder: Path, out: Path, window: int) -> Path:
    """A copy of a checkpoint with a longer attention window."""
    shutil.copytree(folder, out)
    config = json.loads((out / "config.json").read_text())
    config.get("text_config", config)["sliding_window"] = window
    (out / "config.json").write_text(json.dumps(config))
    return out


@pytest.mark.parametrize("name", [*SHARING_ZOO, "gemma3_padded"])
def test_shared_prefix_gives_the_answers_of_whole_prompts(
    name: str, tiny_checkpoints: Any, tmp_path: Path
) -> None:
    if name == "gemma3_padded":  # a window longer than the prompts: padded forks
        folder = _widened(tiny_checkpoints["gemma3"], tmp_path / "gemma3", 512)
    else:
        folder = tiny_checkpoints[name]
    shared, shared_out = _answer(folder, batch_size=4)
    whole, whole_out = _answer(folder, batch_size=4, share_images=False)
    assert shared.sharing.shared and shared.share_images and not whole.share_images
    _assert_same_envelopes(shared_out, whole_out, TOLERANCE)
    # One prefix pass per image: the vision tower sees each image once, not once per prompt.
    assert shared.stats.shared_groups == len(IMAGES)
    assert 0 < shared.stats.vision_calls <= whole.stats.vision_calls
    assert whole.stats.vision_rows == len(TEXTS) * shared.stats.vision_rows
    assert shared.stats.prefill_tokens < whole.stats.prefill_tokens
    narrow = name in ("gemma3", "aya_vision")
    assert (any("unpadded" in m for m in shared._logged)) == narrow


def test_prefix_sharing_in_bfloat16_stays_within_its_rounding(tiny_checkpoints: Any) -> None:
    folder = tiny_checkpoints["llava"]
    shared, shared_out = _answer(folder, batch_size=4, dtype="bfloat16")
    _, whole_out = _answer(folder, batch_size=4, dtype="bfloat16", share_images=False)
    assert shared.model.dtype == torch.bfloat16 and shared.stats.shared_groups == len(IMAGES)
    for a, b in zip(shared_out, whole_out, strict=True):
        # bfloat16 keeps 8 bits: logits near 1 are exact to 2**-8; batching alone moves them as much.
        assert a["entropy"] == pytest.approx(b["entropy"], abs=1e-2)
        assert a["answer_logprobs"] == pytest.approx(b["answer_logprobs"], abs=1e-2)
        assert a["lens"]["top1_ids"][-1] == b["lens"]["top1_ids"][-1]


def test_batch_budget_splits_an_images_prompts_into_forks(tiny_checkpoints: Any) -> None:
    folder = tiny_checkpoints[FORKED]
    _, whole_out = _answer(folder, batch_size=4, share_images=False)
    pairs, pairs_out = _answer(folder, batch_size=2)
    assert pairs.stats.shared_groups == len(IMAGES)
    # Per image: one prefix pass and two forks (2 + 1 prompts); then one batch of two text-only prompts.
    assert pairs.n_model_calls == len(IMAGES) * 3 + 1
    _assert_same_envelopes(pairs_out, whole_out, TOLERANCE)
    single, single_out = _answer(folder, batch_size=4, max_batch_tokens=1)
    assert single.n_model_calls == len(IMAGES) * (1 + len(TEXTS)) + 1  # one row per fork
    _assert_same_envelopes(single_out, whole_out, TOLERANCE)


def test_a_group_of_one_prompt_is_run_whole(tiny_checkpoints: Any) -> None:
    wrapper, _ = _answer(tiny_checkpoints["llava"], docs=[DOCS[0], DOCS[3], DOCS[-1]], batch_size=4)
    assert wrapper.stats.shared_groups == 0 and wrapper.stats.vision_rows == 2
    assert wrapper.n_model_calls == 2  # both images in one batch, then the text-only prompt


def test_each_stored_image_is_decoded_once(tiny_checkpoints: Any, tmp_path: Path) -> None:
    stored = datasets.Dataset.from_list(DOCS, features=FEATURES)
    stored.save_to_disk(tmp_path / "docs")
    dataset = datasets.load_from_disk(tmp_path / "docs")
    shared, shared_out = _answer(tiny_checkpoints["llava"], docs=dataset, batch_size=4)
    assert shared.stats.decoded_images == len(IMAGES)
    assert shared.stats.shared_groups == len(IMAGES)
    _, listed_out = _answer(tiny_checkpoints["llava"], batch_size=4, share_images=False)
    _assert_same_envelopes(shared_out, listed_out, TOLERANCE)


def test_requests_are_collected_without_decoding_images() -> None:
    dataset = datasets.Dataset.from_list(DOCS, features=FEATURES)
    store = DocumentStore({"mc": {"test": dataset}})
    requests = collect_requests(
        _requests(DOCS, GREEDY), store._task_dict, count_images=False, read_document=store.document
    )
    assert all(r.n_images == -1 and r.answers == tuple(COLORS) for r in requests)
    keys = [store.visual_key(r) for r in requests]
    assert len(set(keys)) == len(IMAGES) + 1  # two images, and no image at all
    assert store.decoded_images == 0
    visuals = store.group_visuals([requests[i] for i in range(len(TEXTS))])
    assert store.decoded_images == 1 and all(v[0].size == IMAGES[0].size for v in visuals)


def test_documents_whose_visuals_differ_are_not_grouped(tiny_checkpoints: Any) -> None:
    # Same stored image, but doc_to_visual crops it differently for one row: that row is run apart.
    def cropping(doc: dict[str, Any]) -> list[Any]:
        if doc["image"] is None:
            return []
        return [doc["image"].crop((0, 0, 32, 32))] if "blue" in doc["text"] else [doc["image"]]

    shared, shared_out = _answer(tiny_checkpoints["llava"], visual=cropping, batch_size=4)
    whole, whole_out = _answer(tiny_checkpoints["llava"], visual=cropping, batch_size=4, share_images=False)
    assert shared.stats.shared_groups == len(IMAGES)  # the two uncropped prompts of each image
    assert shared.stats.vision_rows == whole.stats.vision_rows - 2
    _assert_same_envelopes(shared_out, whole_out, TOLERANCE)


def test_architectures_that_do_not_share_say_why(tiny_checkpoints: Any) -> None:
    for name in ("mllama", "qwen2_5_omni", "paligemma"):
        config = AutoConfig.from_pretrained(tiny_checkpoints[name])
        support = sharing_support(SimpleNamespace(config=config), text_only=False)
        assert not support.shared and support.reason == UNSHARED_MODEL_TYPES[config.model_type]
    unknown = sharing_support(SimpleNamespace(config=SimpleNamespace(model_type="fuyu")), text_only=False)
    assert not unknown.shared and "fuyu" in unknown.reason
    text = sharing_support(SimpleNamespace(config=SimpleNamespace(model_type="llama")), text_only=True)
    assert not text.shared and "text-only" in text.reason
    assert not SHARED_MODEL_TYPES & set(UNSHARED_MODEL_TYPES)


def test_split_needs_the_same_tokens_up_to_the_images() -> None:
    image, other = 9, 5
    first = {
        "input_ids": torch.tensor([[1, 2, image, image, image, 7, 3, 4]]),
        "attention_mask": torch.ones(1, 8),
    }
    raw = [[1, 2, image, 7, 3, 4], [1, 2, image, 7, 3, 8, 8]]
    split = split_prompts(first, raw, image_token_id=image, boundary_ids={image, 7})
    assert not isinstance(split, str)
    assert split.length == 5 and split.suffixes == [[7, 3, 4], [7, 3, 8, 8]]
    assert split.prefix["input_ids"].tolist() == [[1, 2, image, image, image]]
    assert split.prefix["attention_mask"].shape == (1, 5)
    # A cut next to ordinary text is refused: the tokenizer might merge across it.
    assert isinstance(split_prompts(first, raw, image_token_id=image, boundary_ids={7}), str)
    # The processor closes the image with a token (8) the tokenizer's prompt lacks: it stays in the prefix.
    closed = {"input_ids": torch.tensor([[1, 2, image, image, 8, 3, 4]])}
    split = split_prompts(closed, [[1, 2, image, 3, 4]], image_token_id=image, boundary_ids={image, 8})
    assert not isinstance(split, str) and split.length == 5 and split.suffixes == [[3, 4]]
    # Text before the image differs: nothing is shared.
    differing = [raw[0], [1, other, image, 7, 3]]
    assert isinstance(split_prompts(first, differing, image_token_id=image, boundary_ids={image, 7}), str)
    encoded = [first["input_ids"][0].tolist(), [1, 2, image, image, image, 7, 3, 6, 6]]
    by_ids = split_encoded(first, encoded, image_token_id=image)
    assert not isinstance(by_ids, str) and by_ids.length == 7 and by_ids.suffixes == [[4], [6, 6]]


def test_a_fork_leaves_the_prefix_cache_as_it_was() -> None:
    from transformers import DynamicCache

    cache = DynamicCache()
    keys, values = torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 4)
    cache.update(keys, values, 0)
    fork = fork_cache(cache, 3)
    fork.update(torch.ones(3, 2, 1, 4), torch.ones(3, 2, 1, 4), 0)
    assert fork.layers[0].keys.shape == (3, 2, 6, 4)
    assert torch.equal(fork.layers[0].keys[2, :, :5], keys[0])
    assert cache.layers[0].keys.shape == (1, 2, 5, 4) and torch.equal(cache.layers[0].keys, keys)
