"""The logit lens reads each decoder layer at the answer position; its last layer is the model's output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    SmolVLMConfig,
    SmolVLMForConditionalGeneration,
)

from modality_conflict.dataset_builder.constants import COLORS
from modality_conflict.models.logit_lens import (
    LastPositionRecorder,
    UnsupportedModelError,
    calibrate_lens,
    find_lens_modules,
    lens_logits,
    lens_records,
)

QUESTION = "What color is the square? Please use one word to answer this question."
CONFLICT = "The square is green. " + QUESTION


def _load(folder: Path) -> tuple[object, object]:
    processor = AutoProcessor.from_pretrained(folder)
    processor.tokenizer.padding_side = "left"
    return processor, AutoModelForImageTextToText.from_pretrained(folder).eval()


def _batch(processor: object) -> dict[str, torch.Tensor]:
    """Two image prompts of different lengths, so the shorter one is left-padded."""
    prompts = []
    for text in (QUESTION, CONFLICT):
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
        prompts.append(processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
    images = [[Image.new("RGB", (48, 48), "green")], [Image.new("RGB", (80, 40), "orange")]]
    return processor(text=prompts, images=images, padding=True, return_tensors="pt")


def test_finds_the_text_decoders_norm_head_and_layers(tiny_mllm_dir: Path) -> None:
    _, model = _load(tiny_mllm_dir)
    modules = find_lens_modules(model)
    decoder = model.get_decoder()
    assert modules.final_norm is decoder.norm
    assert modules.lm_head is model.lm_head
    assert list(modules.decoder_layers) == list(decoder.layers)
    assert modules.n_layers == model.config.get_text_config().num_hidden_layers == 3


def test_last_layer_lens_equals_the_real_logits(tiny_mllm_dir: Path) -> None:
    processor, model = _load(tiny_mllm_dir)
    inputs = _batch(processor)
    assert (inputs["attention_mask"][:, 0] == 0).any()  # one row is padded
    modules = find_lens_modules(model)
    with torch.no_grad(), LastPositionRecorder(modules) as recorder:
        real = model(**inputs).logits[:, -1].float()
    per_layer = list(lens_logits(modules, recorder.recorded()[1]))
    assert len(per_layer) == modules.n_layers
    assert per_layer[-1].shape == real.shape
    torch.testing.assert_close(per_layer[-1], real, rtol=1e-5, atol=1e-5)
    # Earlier layers differ from the output: the lens does read intermediate states.
    assert not torch.allclose(per_layer[0], real, atol=1e-3)


def test_intermediate_layers_match_normed_hidden_states(tiny_mllm_dir: Path) -> None:
    processor, model = _load(tiny_mllm_dir)
    inputs = _batch(processor)
    modules = find_lens_modules(model)
    with torch.no_grad(), LastPositionRecorder(modules) as recorder:
        hidden = model(**inputs, output_hidden_states=True).hidden_states
    states = recorder.recorded()[1]
    # hidden_states[i + 1] is layer i's output, except the last entry, which is already normed.
    for layer in range(modules.n_layers - 1):
        torch.testing.assert_close(states[layer], hidden[layer + 1][:, -1])
    with torch.no_grad():
        torch.testing.assert_close(modules.final_norm(states[-1]), hidden[-1][:, -1])


def test_recorder_keeps_only_the_prompt_pass_of_generate(tiny_qwen2_vl_dir: Path) -> None:
    processor, model = _load(tiny_qwen2_vl_dir)
    inputs = _batch(processor)
    modules = find_lens_modules(model)
    with torch.no_grad(), LastPositionRecorder(modules) as recorder:
        output = model.generate(
            **inputs, max_new_tokens=3, do_sample=False, return_dict_in_generate=True, output_logits=True
        )
    assert output.sequences.shape[1] == inputs["input_ids"].shape[1] + 3
    states = recorder.recorded()[1]
    assert all(s.shape == (2, model.config.get_text_config().hidden_size) for s in states)
    last = list(lens_logits(modules, states))[-1]
    torch.testing.assert_close(last, output.logits[0].float(), rtol=1e-5, atol=1e-5)
    recorder.reset()
    with pytest.raises(RuntimeError, match="recorded nothing"):
        recorder.recorded()[1]


def test_records_are_json_safe_and_consistent(tiny_idefics3_dir: Path) -> None:
    processor, model = _load(tiny_idefics3_dir)
    inputs = _batch(processor)
    modules = find_lens_modules(model)
    tokenizer = processor.tokenizer
    colors = COLORS
    ids = {c: tokenizer.encode(f" {c}", add_special_tokens=False)[0] for c in colors}
    caps = {c: tokenizer.encode(f" {c.capitalize()}", add_special_tokens=False)[0] for c in colors}
    with torch.no_grad(), LastPositionRecorder(modules) as recorder:
        real = model(**inputs).logits[:, -1].float()
    records = lens_records(
        modules,
        recorder.recorded()[1],
        ids,
        lambda t: tokenizer.decode([t]),
        extra_answer_token_ids={"capitalized": caps},
    )
    assert len(records) == 2
    for row, record in enumerate(records):
        assert json.loads(json.dumps(record, allow_nan=False)) == record
        assert record["n_layers"] == 3
        assert len(record["top1_ids"]) == len(record["top1_tokens"]) == len(record["answer_logits"]) == 3
        assert record["top1_ids"][-1] == int(real[row].argmax())
        assert record["top1_tokens"][-1] == tokenizer.decode([record["top1_ids"][-1]])
        assert record["answer_token_ids"] == ids and list(record["answer_token_ids"]) == list(colors)
        expected = real[row, [ids[c] for c in colors]].tolist()
        assert record["answer_logits"][-1] == pytest.approx(expected, abs=1e-4)
        expected_caps = real[row, [caps[c] for c in colors]].tolist()
        assert record["answer_logits_capitalized"][-1] == pytest.approx(expected_caps, abs=1e-4)


def test_plain_causal_lm_is_supported() -> None:
    config = LlamaConfig(
        vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2
    )
    model = LlamaForCausalLM(config).eval()
    modules = find_lens_modules(model)
    ids = torch.tensor([[1, 5, 7, 9]])
    with torch.no_grad(), LastPositionRecorder(modules) as recorder:
        real = model(ids).logits[:, -1]
    torch.testing.assert_close(list(lens_logits(modules, recorder.recorded()[1]))[-1], real)


_LLAMA = {
    "model_type": "llama",
    "vocab_size": 100,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
}
_CLIP = {
    "model_type": "clip_vision_model",
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 32,
    "patch_size": 8,
}


def _other_architecture(name: str) -> nn.Module:
    """Tiny in-memory models of the other supported families (text input only, so no processor needed)."""
    if name == "qwen2_5_vl":
        text = {
            "vocab_size": 100,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            "bos_token_id": None,
            "eos_token_id": None,
        }
        vision = {
            "depth": 1,
            "hidden_size": 16,
            "out_hidden_size": 32,
            "num_heads": 2,
            "intermediate_size": 32,
        }
        config = Qwen2_5_VLConfig(
            text_config=text,
            vision_config=vision,
            image_token_id=99,
            video_token_id=98,
            vision_start_token_id=97,
        )
        return Qwen2_5_VLForConditionalGeneration(config)
    if name == "llava_next":
        config = LlavaNextConfig(
            text_config=_LLAMA, vision_config=_CLIP, image_token_index=99, image_grid_pinpoints=[[32, 32]]
        )
        return LlavaNextForConditionalGeneration(config)
    vision = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    config = SmolVLMConfig(text_config=_LLAMA, vision_config={**vision, "image_size": 32, "patch_size": 8})
    return SmolVLMForConditionalGeneration(config)


@pytest.mark.parametrize("name", ["qwen2_5_vl", "llava_next", "smolvlm"])
def test_other_supported_families(name: str) -> None:
    model = _other_architecture(name).eval()
    modules = find_lens_modules(model)
    assert modules.n_layers == 2 and modules.final_norm is model.get_decoder().norm
    with torch.no_grad(), LastPositionRecorder(modules) as recorder:
        real = model(input_ids=torch.tensor([[1, 5, 7, 9, 11]])).logits[:, -1]
    torch.testing.assert_close(list(lens_logits(modules, recorder.recorded()[1]))[-1], real)


class MysteryVLM(nn.Module):
    """A model with a head but no recognisable decoder."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks_of_stuff = nn.ModuleList([nn.Linear(4, 4)])
        self.head = nn.Linear(4, 10)

    def get_output_embeddings(self) -> nn.Module:
        return self.head


class HeadlessVLM(nn.Module):
    def get_output_embeddings(self) -> None:
        return None


def test_unknown_architecture_error_names_the_class() -> None:
    with pytest.raises(UnsupportedModelError, match="MysteryVLM"):
        find_lens_modules(MysteryVLM())
    with pytest.raises(UnsupportedModelError, match="HeadlessVLM.*LM head"):
        find_lens_modules(HeadlessVLM())


def test_calibration_keeps_the_transform_the_model_applies_or_refuses(tiny_qwen2_vl_dir: Path) -> None:
    processor, model = _load(tiny_qwen2_vl_dir)
    inputs = _batch(processor)
    modules = find_lens_modules(model)
    with torch.no_grad(), LastPositionRecorder(modules) as recorder:
        real = model(**inputs).logits[:, -1].float()
    last = recorder.recorded()[1][-1]
    # A configured scale that the model does not apply is dropped; one it does apply is kept.
    scaled = type(modules)(modules.final_norm, modules.lm_head, modules.decoder_layers, logit_scale=0.5)
    assert calibrate_lens(scaled, last, real).logit_scale is None
    assert calibrate_lens(scaled, last, real * 0.5).logit_scale == 0.5
    with pytest.raises(UnsupportedModelError, match="does not reproduce its logits.*lens=False"):
        calibrate_lens(modules, last, real + 1.0, model_name="Shifted")
