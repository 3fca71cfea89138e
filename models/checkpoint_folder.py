"""Writing a checkpoint folder: the chat-template content loop, seeded initialisation and the files;
shared by the SmolLM2 LLaVA and the tests' tiny checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import GenerationConfig, PreTrainedTokenizerFast


def content_loop(image_text: str) -> str:
    """Jinja fragment writing a message's content (a string or typed parts), images as ``image_text``."""
    return (
        "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
        "{% for part in message['content'] %}"
        "{% if part['type'] == 'image' %}" + image_text + "{% elif part['type'] == 'text' %}"
        "{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    )


def prepare(out_dir: str | Path, seed: int) -> Path:
    """Create the folder and seed the weight initialisation."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    return out


def save_checkpoint(out: Path, model: Any, processor: Any, tokenizer: PreTrainedTokenizerFast) -> Path:
    """Write model, processor (or tokenizer) and a greedy generation config, as ``save_pretrained`` does."""
    model.eval().save_pretrained(out)
    (processor if processor is not None else tokenizer).save_pretrained(out)
    eos = model.config.get_text_config().eos_token_id
    GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos if eos is not None else tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=8,
    ).save_pretrained(out)
    return out
