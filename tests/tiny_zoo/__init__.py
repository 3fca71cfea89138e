"""Tiny random-weight checkpoints of the common multimodal architectures, built offline in seconds.

Every builder writes an ordinary Hugging Face checkpoint folder (model, processor, tokenizer, chat template,
generation config, all through ``save_pretrained``) of a model of about a megabyte, loadable with
``AutoProcessor`` and the auto class named in :data:`ARCHITECTURES`, by lmms-eval's own wrappers as by
``modality_conflict_hf``. The weights are random: the models answer noise, but they exercise what matters
for the benchmark's plumbing the way the real checkpoints do: the chat template (where the BOS is written,
default and dated system prompts, reasoning blocks, where the answer starts), the tokenizer (whether it
adds a BOS on encode), the processor (image-token expansion, text-only prompts) and the model class
(cross-attention layers, logit scaling, multimodal RoPE).

The tokenizer is a byte-level BPE trained once per process over a small corpus holding the benchmark's
vocabulary, plus each architecture's special tokens (:mod:`~tiny_zoo.common`).
Builds are deterministic: the same seed gives the same files.

Usage::

    from tiny_zoo import build, build_all
    folder = build("gemma3", "/tmp/zoo/gemma3")
    folders = build_all("/tmp/zoo")  # {name: folder}

Each family's module is imported only when one of its checkpoints is built. Which of them the benchmark
runs, and why the others are refused, is the README's support matrix (``tests/support_matrix.json``, checked
by the conformance tests).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

__all__ = ["ARCHITECTURES", "Architecture", "build", "build_all"]


@dataclass(frozen=True)
class Architecture:
    """One tiny checkpoint kind.

    Attributes
    ----------
    name
        Short name, also the default folder name.
    model_type
        The ``config.json`` ``model_type``.
    auto_class
        The transformers auto class that loads the real checkpoints of this family.
    builder
        ``"module:function"`` under this package; ``function(out_dir, *, seed) -> Path``.
    mimics
        The real checkpoints whose template, tokenizer and processor behaviour the tiny one copies.
    needs
        Extra Python packages the processor needs at load time (empty when none).
    needs_transformers
        The transformers major version the benchmark runs the family from. Under an older one only its
        ``config.json`` is written: the wrapper refuses the family from it before loading anything, and
        the older release may lack the family's classes.
    """

    name: str
    model_type: str
    auto_class: str
    builder: str
    mimics: str
    needs: tuple[str, ...] = ()
    needs_transformers: int = 4

    def build(self, out_dir: str | Path, *, seed: int = 0) -> Path:
        """Write this checkpoint to ``out_dir`` and return the folder."""
        if int(version("transformers").split(".")[0]) < self.needs_transformers:
            out = Path(out_dir)
            out.mkdir(parents=True, exist_ok=True)
            (out / "config.json").write_text(json.dumps({"model_type": self.model_type}) + "\n")
            return out
        module, _, function = self.builder.partition(":")
        return getattr(importlib.import_module(f"{__name__}.{module}"), function)(out_dir, seed=seed)


_ITT = "AutoModelForImageTextToText"
_MLM = "AutoModelForMultimodalLM"
_CLM = "AutoModelForCausalLM"

ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("llava", "llava", _ITT, "llava:build_llava", "llava-hf/llava-1.5-7b-hf"),
        Architecture(
            "llava_next", "llava_next", _ITT, "llava:build_llava_next", "llava-hf/llava-v1.6-mistral-7b-hf"
        ),
        Architecture(
            "llava_onevision",
            "llava_onevision",
            _ITT,
            "llava:build_llava_onevision",
            "llava-hf/llava-onevision-qwen2-0.5b-ov-hf",
        ),
        Architecture("qwen2_vl", "qwen2_vl", _ITT, "qwen:build_qwen2_vl", "Qwen/Qwen2-VL-2B-Instruct"),
        Architecture(
            "qwen2_5_vl", "qwen2_5_vl", _ITT, "qwen:build_qwen2_5_vl", "Qwen/Qwen2.5-VL-3B-Instruct"
        ),
        Architecture("qwen3_vl", "qwen3_vl", _ITT, "qwen:build_qwen3_vl", "Qwen/Qwen3-VL-2B-Instruct"),
        Architecture(
            "qwen3_vl_thinking",
            "qwen3_vl",
            _ITT,
            "qwen:build_qwen3_vl_thinking",
            "Qwen/Qwen3-VL-2B-Thinking (the generation prompt opens <think>, no switch)",
        ),
        Architecture(
            "qwen3_vl_opens_think",
            "qwen3_vl",
            _ITT,
            "qwen:build_qwen3_vl_opens_think",
            "models that open <think> themselves after the generation prompt (GLM-4.1V-Thinking)",
        ),
        Architecture(
            "qwen3_vl_hybrid",
            "qwen3_vl",
            _ITT,
            "qwen:build_qwen3_vl_hybrid",
            "hybrid reasoning templates with enable_thinking (Qwen3, GLM-4.5V)",
        ),
        Architecture(
            "idefics3", "idefics3", _ITT, "idefics:build_idefics3", "HuggingFaceM4/Idefics3-8B-Llama3"
        ),
        Architecture(
            "smolvlm",
            "smolvlm",
            _ITT,
            "idefics:build_smolvlm",
            "HuggingFaceTB/SmolVLM-256M-Instruct",
            needs=("num2words",),
        ),
        Architecture("internvl", "internvl", _ITT, "internvl:build_internvl", "OpenGVLab/InternVL3-1B-hf"),
        Architecture("gemma3", "gemma3", _ITT, "gemma3:build_gemma3", "google/gemma-3-4b-it"),
        Architecture(
            "mistral3",
            "mistral3",
            _ITT,
            "mistral3:build_mistral3",
            "mistralai/Mistral-Small-3.1-24B-Instruct-2503",
        ),
        Architecture("pixtral", "llava", _ITT, "llava:build_pixtral", "mistral-community/pixtral-12b"),
        Architecture(
            "aya_vision", "aya_vision", _ITT, "aya_vision:build_aya_vision", "CohereLabs/aya-vision-8b"
        ),
        Architecture(
            "aya_vision_marker",
            "aya_vision",
            _ITT,
            "aya_vision:build_aya_vision_marker",
            "templates whose assistant turn opens with a marker the generation prompt lacks",
        ),
        Architecture(
            "mllama", "mllama", _ITT, "mllama:build_mllama", "meta-llama/Llama-3.2-11B-Vision-Instruct"
        ),
        Architecture(
            "phi4_multimodal",
            "phi4_multimodal",
            _MLM,
            "multimodal_lm:build_phi4_multimodal",
            "microsoft/Phi-4-multimodal-instruct (transformers-native weights)",
            needs_transformers=5,
        ),
        Architecture(
            "qwen2_5_omni",
            "qwen2_5_omni",
            _MLM,
            "multimodal_lm:build_qwen2_5_omni",
            "Qwen/Qwen2.5-Omni-3B (thinker only)",
            needs_transformers=5,
        ),
        Architecture(
            "qwen2_audio",
            "qwen2_audio",
            _MLM,
            "multimodal_lm:build_qwen2_audio",
            "Qwen/Qwen2-Audio-7B-Instruct (an audio-language model: no images)",
            needs_transformers=5,
        ),
        Architecture(
            "paligemma",
            "paligemma",
            _ITT,
            "refused:build_paligemma",
            "google/paligemma-3b-mix-224",
        ),
        Architecture(
            "internvl_chat_remote",
            "internvl_chat",
            _CLM,
            "refused:build_internvl_chat_remote",
            "OpenGVLab/InternVL2_5-1B (remote code; config.json only)",
        ),
        Architecture(
            "text_lm",
            "llama",
            _CLM,
            "refused:build_text_lm",
            "any text-only chat LM (answers text-only rows, refuses image rows)",
        ),
    )
}
"""Every tiny checkpoint kind, by name."""


def build(name: str, out_dir: str | Path, *, seed: int = 0) -> Path:
    """Write the tiny checkpoint ``name`` to ``out_dir`` and return the folder.

    Raises
    ------
    KeyError
        When ``name`` is not in :data:`ARCHITECTURES` (the message lists the known names).
    """
    try:
        architecture = ARCHITECTURES[name]
    except KeyError:
        raise KeyError(f"unknown tiny architecture {name!r}; known: {sorted(ARCHITECTURES)}") from None
    return architecture.build(out_dir, seed=seed)


def build_all(root: str | Path, names: Iterable[str] | None = None, *, seed: int = 0) -> dict[str, Path]:
    """Write several tiny checkpoints under ``root`` (one folder per name); all of them by default."""
    root = Path(root)
    return {name: build(name, root / name, seed=seed) for name in (names or ARCHITECTURES)}
