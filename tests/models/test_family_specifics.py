"""What particular families of the tiny zoo need from ``modality_conflict_hf``, beyond the common checks.

Routing by ``config.json``, Mllama's cross-attention layers, Aya Vision's unscaled logits, reasoning
templates, dated system prompts, Phi-4's image encoder, and the errors for what cannot be run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import transformers
from conformance import instances, is_image_doc, make_wrapper, pick_docs, watch_prefills
from packaging.version import Version

from modality_conflict.mc_tasks import task_logic
from modality_conflict.models import loading, routing
from modality_conflict.models.envelope import decode_envelope
from modality_conflict.models.errors import ModelArgumentError
from modality_conflict.models.routing import route_checkpoint


@pytest.fixture(scope="module")
def docs(quick_dataset_dir: Path) -> list[dict[str, Any]]:
    return pick_docs(quick_dataset_dir)


MULTIMODAL_LM_FAMILIES = ("phi4_multimodal", "qwen2_5_omni")
NEWER_THAN_INSTALLED = routing.transformers_major() < 5


@pytest.mark.parametrize(
    ("name", "auto_class", "model_class"),
    [
        ("gemma3", "AutoModelForImageTextToText", "Gemma3ForConditionalGeneration"),
        pytest.param(
            "phi4_multimodal",
            "AutoModelForMultimodalLM",
            "Phi4MultimodalForCausalLM",
            marks=pytest.mark.skipif(NEWER_THAN_INSTALLED, reason="refused under transformers 4.x"),
        ),
        pytest.param(
            "qwen2_5_omni",
            "AutoModelForMultimodalLM",
            "Qwen2_5OmniThinkerForConditionalGeneration",
            marks=pytest.mark.skipif(NEWER_THAN_INSTALLED, reason="refused under transformers 4.x"),
        ),
        ("text_lm", "AutoModelForCausalLM", "LlamaForCausalLM"),
    ],
)
def test_checkpoints_are_routed_by_their_config(
    name: str, auto_class: str, model_class: str, tiny_checkpoints: Any, docs: list[dict[str, Any]]
) -> None:
    folder = tiny_checkpoints[name]
    assert route_checkpoint(str(folder)).auto_class == auto_class
    wrapper = make_wrapper(folder, docs, lens=False)
    assert type(wrapper.model).__name__ == model_class
    assert wrapper.text_only == (name == "text_lm")


@pytest.mark.parametrize("name", MULTIMODAL_LM_FAMILIES)
def test_a_family_newer_than_the_installed_transformers_is_refused_naming_the_version(
    name: str, tiny_checkpoints: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under a 5.x the family loads (above); what a 4.x install says is checked by pretending to be one.
    monkeypatch.setattr(routing, "transformers_major", lambda: 4)
    with pytest.raises(ModelArgumentError, match=r"needs transformers >= 5\.0 \(.*\); this environment has"):
        route_checkpoint(str(tiny_checkpoints[name]))


def test_remote_code_vlm_refusal_gives_the_final_answer_first(tiny_checkpoints: Any) -> None:
    folder = str(tiny_checkpoints["internvl_chat_remote"])  # a config.json and nothing else
    for trust in (False, True):
        with pytest.raises(
            ModelArgumentError, match="remote-code vision-language model.*InternVL\\*-hf"
        ) as error:
            route_checkpoint(folder, trust_remote_code=trust)
        assert "pass trust_remote_code" not in str(error.value)


def test_other_remote_code_needs_trust_before_any_code_runs(tmp_path: Path) -> None:
    config = {"model_type": "house_lm", "auto_map": {"AutoModelForCausalLM": "modeling_house.HouseLM"}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelArgumentError, match="'house_lm' needs its own code.*trust_remote_code=True"):
        route_checkpoint(str(tmp_path))


def test_unknown_model_type_is_named(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(ModelArgumentError, match="model_type 'vit' is neither"):
        route_checkpoint(str(tmp_path))


def test_a_missing_processor_package_is_named(
    tiny_checkpoints: Any, docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoProcessor

    def without_num2words(*_args: Any, **_kwargs: Any) -> Any:
        raise ImportError("Package `num2words` is required to run SmolVLM processor. Install it with ...")

    monkeypatch.setattr(AutoProcessor, "from_pretrained", without_num2words)
    with pytest.raises(
        ModelArgumentError, match="SmolVLMForConditionalGeneration needs a package.*num2words"
    ):
        make_wrapper(tiny_checkpoints["smolvlm"], docs)


def test_mllama_reports_the_cross_attention_layers_that_did_not_run(
    tiny_checkpoints: Any, docs: list[dict[str, Any]]
) -> None:
    wrapper = make_wrapper(tiny_checkpoints["mllama"], docs)
    envelopes = [decode_envelope(r) for r in wrapper.generate_until(instances("generate_until", docs, docs))]
    for doc, envelope in zip(docs, envelopes, strict=True):
        lens = envelope["lens"]
        if is_image_doc(doc):
            assert lens["skipped_layers"] == [] and lens["layer_indices"] == [0, 1, 2]
        else:  # without an image the cross-attention layer (1 of 3) does not run
            assert lens["skipped_layers"] == [1] and lens["layer_indices"] == [0, 2]
        assert (
            lens["n_layers"]
            == len(lens["top1_ids"])
            == len(lens["answer_logits"])
            == len(lens["layer_indices"])
        )


def test_aya_vision_lens_follows_the_unscaled_logits(
    tiny_checkpoints: Any, docs: list[dict[str, Any]]
) -> None:
    wrapper = make_wrapper(tiny_checkpoints["aya_vision"], docs)
    assert wrapper.model.config.get_text_config().logit_scale == 0.0625
    # AyaVisionForConditionalGeneration applies Cohere's logit scale from transformers 5.25 on (the 3.13
    # cell), not before (4.57, 5.24): the lens must follow what the model does.
    applies_scale = Version(transformers.__version__) >= Version("5.25")
    assert wrapper.lens_modules.logit_scale == (0.0625 if applies_scale else None)


def test_gemma3_lens_keeps_its_soft_capping_when_the_model_applies_it(
    tiny_checkpoints: Any, docs: list[dict[str, Any]]
) -> None:
    wrapper = make_wrapper(tiny_checkpoints["gemma3"], docs)
    configured = wrapper.model.config.get_text_config().final_logit_softcapping
    assert wrapper.lens_modules.logit_softcap == configured


def test_hybrid_reasoning_template_is_rendered_with_thinking_off(
    tiny_checkpoints: Any, docs: list[dict[str, Any]]
) -> None:
    wrapper = make_wrapper(tiny_checkpoints["qwen3_vl_hybrid"], docs)
    prompt = wrapper.chat.prompt(task_logic.doc_to_text(docs[-1]), 0)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


@pytest.mark.parametrize(
    ("name", "written"),
    [("mistral3", "The current date is 2025-01-01."), ("mllama", "Today Date: 01 Jan 2025")],
)
def test_dated_templates_see_the_pinned_date(
    name: str, written: str, tiny_checkpoints: Any, docs: list[dict[str, Any]]
) -> None:
    wrapper = make_wrapper(tiny_checkpoints[name], docs)
    text_row = docs[-1]
    with watch_prefills(wrapper.model) as calls:
        (response,) = wrapper.generate_until(instances("generate_until", [text_row], docs))
    assert written in wrapper.tokenizer.decode(calls[0].rows()[0])
    assert written in decode_envelope(response)["prompt"]["preamble"]
    other = make_wrapper(tiny_checkpoints[name], docs, prompt_date="2031-11-03")
    assert written not in other.chat.prompt(task_logic.doc_to_text(text_row), 0)


def test_a_bad_prompt_date_is_a_clear_error(tiny_checkpoints: Any, docs: list[dict[str, Any]]) -> None:
    with pytest.raises(ModelArgumentError, match="prompt_date must be YYYY-MM-DD, got '1/1/2025'"):
        make_wrapper(tiny_checkpoints["llava"], docs, prompt_date="1/1/2025")


@pytest.mark.skipif(NEWER_THAN_INSTALLED, reason="Phi-4-multimodal is refused under transformers 4.x")
def test_phi4_image_encoder_attends_both_ways(tiny_checkpoints: Any, docs: list[dict[str, Any]]) -> None:
    wrapper = make_wrapper(tiny_checkpoints["phi4_multimodal"], docs, lens=False)
    attention = [m for m in wrapper.model.modules() if type(m).__name__ == "Phi4MultimodalVisionAttention"]
    assert attention and not any(m.is_causal for m in attention)
    assert loading.repair_encoder_attention(wrapper.model) == []  # nothing left to repair


def test_the_envelope_survives_lmms_evals_reasoning_tag_stripping(
    tiny_checkpoints: Any, docs: list[dict[str, Any]]
) -> None:
    from lmms_eval.api.reasoning import strip_reasoning_tags

    from modality_conflict.models.envelope import encode_envelope

    lens = {"n_layers": 2, "top1_ids": [5, 6], "top1_tokens": ["</think>", "<think>"]}
    envelope = encode_envelope(text="red", entropy=0.5, estimator="full_vocab", lens=lens)
    tags = [["<think>", "</think>"], ["<analysis>", "</analysis>"]]
    assert decode_envelope(strip_reasoning_tags(envelope, tags))["lens"]["top1_tokens"] == [
        "</think>",
        "<think>",
    ]
    wrapper = make_wrapper(tiny_checkpoints["qwen3_vl_hybrid"], docs)
    (response,) = wrapper.generate_until(instances("generate_until", docs[-1:], docs))
    assert "<" not in response and ">" not in response
    assert math.isfinite(decode_envelope(strip_reasoning_tags(response, tags))["entropy"])
