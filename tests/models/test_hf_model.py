"""The project's lmms-eval model on the tiny checkpoints: envelopes, batching, scoring, arguments."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from lmms_eval.api.instance import Instance
from loguru import logger
from PIL import Image
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
)

from modality_conflict.dataset_builder.constants import COLORS
from modality_conflict.models.chat import answer_first_token_ids
from modality_conflict.models.envelope import decode_envelope
from modality_conflict.models.hf_model import ModalityConflictHF, ModelArgumentError

QUESTION = "What color is the circle? Please use one word to answer this question."
ANSWER_WORDS = COLORS
DOCS = [
    {"image": Image.new("RGB", (64, 64), "red"), "text": QUESTION, "condition": 0},
    {"image": None, "text": "The circle is blue. " + QUESTION, "condition": 1},
    {"image": Image.new("RGB", (96, 64), "red"), "text": "The circle is blue. " + QUESTION, "condition": 2},
    {"image": None, "text": "The circle's color is the same as a banana. " + QUESTION, "condition": 1},
]
for _doc in DOCS:
    # The benchmark's columns: its closed answer set and the condition make a doc one of its rows.
    _doc["answer_choices"] = list(ANSWER_WORDS)
GREEDY = {"max_new_tokens": 3, "temperature": 0, "do_sample": False, "until": ["\n\n"]}


def doc_to_visual(doc: dict[str, Any]) -> list[Image.Image]:
    return [doc["image"]] if doc["image"] is not None else []


def _requests(kind: str, second: Any, doc_ids: Sequence[int] = range(len(DOCS))) -> list[Instance]:
    """Requests as lmms-eval builds them: (context, gen_kwargs/target, doc_to_visual, doc_id, task, split)."""
    requests = []
    for i in doc_ids:
        # Each request gets its own gen_kwargs dict, as in lmms-eval (wrappers may pop from it).
        own = dict(second) if isinstance(second, dict) else second
        arguments = (DOCS[i]["text"], own, doc_to_visual, i, "mc", "test")
        requests.append(Instance(kind, arguments, idx=0, metadata={"task": "mc", "doc_id": i, "repeats": 1}))
    return requests


def _make_wrapper(folder: Path, **kwargs: Any) -> ModalityConflictHF:
    model = ModalityConflictHF(pretrained=str(folder), device="cpu", **kwargs)
    model.task_dict = {"mc": {"test": DOCS}}
    return model


@pytest.fixture(scope="module")
def reference(tiny_mllm_dir: Path) -> tuple[Any, Any]:
    processor = AutoProcessor.from_pretrained(tiny_mllm_dir)
    return processor, AutoModelForImageTextToText.from_pretrained(tiny_mllm_dir).eval()


def _reference_inputs(processor: Any, doc: dict[str, Any], extra: str = "") -> Any:
    content: list[dict[str, Any]] = [{"type": "image"}] if doc["image"] is not None else []
    content.append({"type": "text", "text": doc["text"]})
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )
    # transformers' own rule (apply_chat_template with tokenize=True): no second BOS after the template's.
    special = not prompt.startswith(processor.tokenizer.bos_token or "\0")
    if doc["image"] is None:
        return processor(text=[prompt + extra], return_tensors="pt", add_special_tokens=special)
    return processor(
        text=[prompt + extra], images=[[doc["image"]]], return_tensors="pt", add_special_tokens=special
    )


def test_envelope_matches_the_models_own_logits(tiny_mllm_dir: Path, reference: tuple[Any, Any]) -> None:
    processor, model = reference
    wrapper = _make_wrapper(tiny_mllm_dir, batch_size=1)
    answers = wrapper.answer_tokens(ANSWER_WORDS)
    responses = wrapper.generate_until(_requests("generate_until", GREEDY))
    assert len(responses) == len(DOCS)
    for doc, response in zip(DOCS, responses, strict=True):
        envelope = decode_envelope(response)
        assert envelope is not None and envelope["estimator"] == "full_vocab"
        inputs = _reference_inputs(processor, doc)
        with torch.no_grad():
            logits = model(**inputs).logits[0, -1].double()
            greedy = model.generate(**inputs, max_new_tokens=3, do_sample=False)
        log_probs = torch.log_softmax(logits, dim=-1)
        entropy = float(-(log_probs.exp() * log_probs).sum())
        assert math.isfinite(envelope["entropy"])
        assert envelope["entropy"] == pytest.approx(entropy, abs=1e-4)

        for word in ANSWER_WORDS:
            ids = sorted({answers.lower[word], answers.capitalized[word]})
            expected = float(torch.logsumexp(log_probs[ids], dim=0))
            assert envelope["answer_logprobs"][word] == pytest.approx(expected, abs=1e-4)

        new = greedy[0, inputs["input_ids"].shape[1] :].tolist()
        eos = processor.tokenizer.eos_token_id
        new = new[: new.index(eos)] if eos in new else new
        assert envelope["text"] == processor.tokenizer.decode(new, skip_special_tokens=True).strip()

        lens = envelope["lens"]
        assert lens["n_layers"] == model.config.get_text_config().num_hidden_layers
        assert lens["top1_ids"][-1] == int(logits.argmax())
        assert list(lens["answer_token_ids"]) == list(ANSWER_WORDS)
        real = [float(logits[answers.lower[w]]) for w in ANSWER_WORDS]
        assert lens["answer_logits"][-1] == pytest.approx(real, abs=1e-4)


def test_batched_equals_unbatched(tiny_mllm_dir: Path) -> None:
    single = _make_wrapper(tiny_mllm_dir, batch_size=1)
    batched = _make_wrapper(tiny_mllm_dir, batch_size=4)
    one = [json.loads(r) for r in single.generate_until(_requests("generate_until", GREEDY))]
    many = [json.loads(r) for r in batched.generate_until(_requests("generate_until", GREEDY))]
    # Requests are grouped by image count: two image prompts and two text-only prompts -> two calls.
    assert single.n_model_calls == 4 and batched.n_model_calls == 2
    for a, b in zip(one, many, strict=True):
        assert a["text"] == b["text"]
        assert a["entropy"] == pytest.approx(b["entropy"], abs=1e-5)
        assert a["lens"]["top1_ids"] == b["lens"]["top1_ids"]
        assert a["answer_logprobs"] == pytest.approx(b["answer_logprobs"], abs=1e-4)


def test_text_only_request_has_no_image_tokens(tiny_llava_dir: Path) -> None:
    wrapper = _make_wrapper(tiny_llava_dir)
    prompt = wrapper.chat.prompt(DOCS[1]["text"], 0)
    assert "<image>" not in prompt and prompt.endswith("ASSISTANT:")
    (response,) = wrapper.generate_until(_requests("generate_until", GREEDY, [1]))
    assert decode_envelope(response) is not None
    assert wrapper.n_model_calls == 1 and 1 <= wrapper.n_forward_passes <= 3


def test_generation_arguments_are_honoured(tiny_qwen2_vl_dir: Path) -> None:
    wrapper = _make_wrapper(tiny_qwen2_vl_dir, lens=False, batch_size=4)
    requests = _requests("generate_until", {"max_new_tokens": 1, "temperature": 0, "do_sample": False})
    short = [json.loads(r) for r in wrapper.generate_until(requests)]
    assert wrapper.n_forward_passes == 2  # one step for each of the two batches
    assert all("lens" not in e for e in short)
    for envelope in short:
        assert len(wrapper.tokenizer.encode(envelope["text"], add_special_tokens=False)) <= 1

    greedy = [json.loads(r) for r in wrapper.generate_until(_requests("generate_until", GREEDY))]
    stop = greedy[0]["text"][1:2]
    if stop.strip():
        cut = json.loads(
            wrapper.generate_until(_requests("generate_until", {**GREEDY, "until": [stop]})[:1])[0]
        )
        assert cut["text"] == greedy[0]["text"].split(stop)[0].strip()

    torch.manual_seed(0)
    sampled = [
        json.loads(r)
        for r in wrapper.generate_until(_requests("generate_until", {"do_sample": True, "temperature": 1.0}))
    ]
    # Entropy is a property of the prompt's distribution, not of the sampled answer.
    for a, b in zip(greedy, sampled, strict=True):
        assert a["entropy"] == pytest.approx(b["entropy"], abs=1e-6)

    with pytest.raises(ModelArgumentError, match="num_beams"):
        wrapper.generate_until(_requests("generate_until", {"num_beams": 2}))


def test_unknown_generation_argument_warns_once(tiny_idefics3_dir: Path) -> None:
    wrapper = _make_wrapper(tiny_idefics3_dir, lens=False)
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m)), level="WARNING")
    try:
        for _ in range(2):
            wrapper.generate_until(_requests("generate_until", {**GREEDY, "frobnicate": 3}, [0]))
    finally:
        logger.remove(sink)
    assert sum("frobnicate" in m for m in messages) == 1


def test_loglikelihood_is_the_exact_sum_of_continuation_log_probs(
    tiny_mllm_dir: Path, reference: tuple[Any, Any]
) -> None:
    processor, model = reference
    wrapper = _make_wrapper(tiny_mllm_dir, batch_size=3)
    continuation = " green circle"
    scores = wrapper.loglikelihood(_requests("loglikelihood", continuation))
    assert wrapper.n_model_calls == 2
    aligned = wrapper.answer_prefix + continuation.lstrip()
    for doc, (score, is_greedy) in zip(DOCS, scores, strict=True):
        context = _reference_inputs(processor, doc)["input_ids"][0]
        inputs = _reference_inputs(processor, doc, aligned)
        ids = inputs["input_ids"][0]
        assert torch.equal(ids[: len(context)], context)
        n_cont = len(ids) - len(context)
        assert n_cont >= 2  # a multi-token continuation: the score is a sum, not a mean
        with torch.no_grad():
            log_probs = torch.log_softmax(model(**inputs).logits[0].double(), dim=-1)
        positions = range(len(context) - 1, len(ids) - 1)
        expected = sum(float(log_probs[p, ids[p + 1]]) for p in positions)
        assert score == pytest.approx(expected, abs=1e-3)
        assert is_greedy == all(int(log_probs[p].argmax()) == int(ids[p + 1]) for p in positions)


def test_loglikelihood_verbatim_and_greedy_flag(tiny_llava_dir: Path) -> None:
    wrapper = _make_wrapper(tiny_llava_dir, align_continuation=False)
    envelope = json.loads(
        wrapper.generate_until(_requests("generate_until", {**GREEDY, "max_new_tokens": 1}, [1]))[0]
    )
    greedy_token = envelope["lens"]["top1_ids"][-1]
    text = wrapper.tokenizer.decode([greedy_token])
    ((score, is_greedy),) = wrapper.loglikelihood(_requests("loglikelihood", text, [1]))
    assert is_greedy
    log_probs = envelope["answer_logprobs"]  # sanity: a single-token score is a log-probability
    assert score <= 0.0 and math.isfinite(score)
    assert max(log_probs.values()) <= 0.0


def test_answer_token_ids_follow_the_template(tiny_mllm_dir: Path) -> None:
    wrapper = _make_wrapper(tiny_mllm_dir)
    tokenizer = wrapper.tokenizer
    expected_prefix = "" if "qwen2_vl" in tiny_mllm_dir.name else " "
    assert wrapper.answer_prefix == expected_prefix
    for word in ANSWER_WORDS:
        assert (
            tokenizer.convert_ids_to_tokens(wrapper.answer_tokens(ANSWER_WORDS).lower[word])
            == ("Ġ" * len(expected_prefix)) + word
        )
    ids = answer_first_token_ids(tokenizer, "USER: hi ASSISTANT:", " ", ["red", "Red"])
    assert ids == {
        "red": tokenizer.convert_tokens_to_ids("Ġred"),
        "Red": tokenizer.convert_tokens_to_ids("ĠRed"),
    }


def test_plain_causal_lm_answers_text_only(tmp_path: Path, tiny_llava_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_llava_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    wrapper = _make_wrapper(tmp_path, batch_size=2)
    assert wrapper.text_only
    responses = wrapper.generate_until(_requests("generate_until", GREEDY, [1, 3]))
    assert all(decode_envelope(r)["lens"]["n_layers"] == 2 for r in responses)
    with pytest.raises(ModelArgumentError, match="text-only"):
        wrapper.generate_until(_requests("generate_until", GREEDY, [0]))


def test_bad_model_arguments_are_clear_errors(tiny_llava_dir: Path) -> None:
    with pytest.raises(ModelArgumentError, match="unknown model_args.*lense"):
        ModalityConflictHF(pretrained=str(tiny_llava_dir), device="cpu", lense=False)
    with pytest.raises(ModelArgumentError, match="dtype"):
        ModalityConflictHF(pretrained=str(tiny_llava_dir), device="cpu", dtype="float13")
    with pytest.raises(ModelArgumentError, match="batch_size"):
        ModalityConflictHF(pretrained=str(tiny_llava_dir), device="cpu", batch_size=0)
    wrapper = _make_wrapper(tiny_llava_dir)
    with pytest.raises(NotImplementedError, match="single-turn"):
        wrapper.generate_until_multi_round([])


def test_created_from_an_lmms_eval_argument_string(tiny_llava_dir: Path) -> None:
    wrapper = ModalityConflictHF.create_from_arg_string(
        f"pretrained={tiny_llava_dir},dtype=float32,lens=False,max_new_tokens=2",
        {"batch_size": 2, "max_batch_size": None, "device": "cpu"},
    )
    assert wrapper.batch_size == 2 and wrapper.use_lens is False and wrapper.lens_modules is None
    assert wrapper.max_new_tokens == 2 and wrapper.model.dtype == torch.float32
    assert wrapper.rank == 0 and wrapper.world_size == 1


def test_candidate_answers_come_from_each_document(tiny_llava_dir: Path) -> None:
    wrapper = _make_wrapper(tiny_llava_dir, batch_size=4)
    docs = [
        {**DOCS[1], "answer_choices": ["cube", "sphere", "cylinder"]},
        {**DOCS[3], "answer_choices": list(ANSWER_WORDS)},
        {**DOCS[3], "answer_choices": ["rubber", "metal"]},
        {key: value for key, value in DOCS[1].items() if key != "answer_choices"},
    ]
    wrapper.task_dict = {"mc": {"test": docs}}
    requests = [
        Instance(
            "generate_until",
            (d["text"], dict(GREEDY), doc_to_visual, i, "mc", "test"),
            idx=0,
            metadata={"task": "mc", "doc_id": i, "repeats": 1},
        )
        for i, d in enumerate(docs)
    ]
    responses = wrapper.generate_until(requests)
    envelopes = [decode_envelope(r) for r in responses]
    # One batch per distinct candidate set: each document's answers are scored against its own set.
    assert wrapper.n_model_calls == 4
    for doc, envelope in zip(docs[:3], envelopes[:3], strict=True):
        assert list(envelope["answer_logprobs"]) == doc["answer_choices"]
        assert list(envelope["lens"]["answer_token_ids"]) == doc["answer_choices"]
        tokens = wrapper.answer_tokens(doc["answer_choices"])
        assert envelope["lens"]["answer_token_ids"] == tokens.lower
    assert wrapper.answer_tokens(["rubber", "metal"]) is wrapper.answer_tokens(("rubber", "metal"))
    # A document without the benchmark's fields belongs to another task: plain text, the same answer.
    assert envelopes[3] is None and responses[3] == envelopes[0]["text"]


def test_answers_sharing_a_first_token_are_refused(tiny_llava_dir: Path) -> None:
    wrapper = _make_wrapper(tiny_llava_dir)
    with pytest.raises(ModelArgumentError, match="share their first token"):
        wrapper.answer_tokens(["red", "reddish"])


def test_system_prompt_is_text_or_a_file(tiny_qwen2_vl_dir: Path, tmp_path: Path) -> None:
    default = _make_wrapper(tiny_qwen2_vl_dir, lens=False).chat.prompt(QUESTION, 0)
    assert "You are a helpful assistant." in default
    given = _make_wrapper(tiny_qwen2_vl_dir, lens=False, system_prompt="Answer briefly.")
    prompt = given.chat.prompt(QUESTION, 0)
    assert "Answer briefly." in prompt and "You are a helpful assistant." not in prompt
    path = tmp_path / "system.txt"
    path.write_text("Answer from the picture.\n")
    from_file = _make_wrapper(tiny_qwen2_vl_dir, lens=False, system_prompt=str(path))
    assert from_file.system_prompt == "Answer from the picture."
    assert "Answer from the picture." in from_file.chat.prompt(QUESTION, 0)
    (response,) = given.generate_until(_requests("generate_until", GREEDY, [1]))
    # The envelope records what the template wrote before the question: here the given system prompt.
    assert "Answer briefly." in decode_envelope(response)["prompt"]["preamble"]
