"""Idefics3 and SmolVLM: SigLIP, pixel shuffle and a Llama-style decoder; "User:<image>...\nAssistant:"."""

from __future__ import annotations

from pathlib import Path

from transformers import (
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessor,
    Idefics3Processor,
    SmolVLMConfig,
    SmolVLMForConditionalGeneration,
    SmolVLMImageProcessor,
    SmolVLMProcessor,
    SmolVLMVideoProcessor,
)

from tiny_zoo.common import (
    GRID_TOKENS,
    IMAGE_SIZE,
    PATCH,
    SIGLIP_VISION,
    content_loop,
    make_tokenizer,
    prepare,
    save_checkpoint,
    tiny_llama_text,
)

# Idefics3 and SmolVLM: "User:<image>...<end_of_utterance>\nAssistant:", the answer after a space.


def _idefics_template(bos_literal: str) -> str:
    # The real templates write the BOS token as a literal string (not ``{{ bos_token }}``) at the start.
    return (
        bos_literal + "{% for message in messages %}{{ message['role'] | capitalize }}"
        "{% if message['content'] is not string and message['content'][0]['type'] == 'image' %}:"
        "{% else %}: {% endif %}" + content_loop("<image>") + "<end_of_utterance>\n{% endfor %}"
        "{% if add_generation_prompt %}Assistant:{% endif %}"
    )


# HuggingFaceM4/Idefics3-8B-Llama3: "<|begin_of_text|>User:..."; the Llama-3 tokenizer also prefixes it.
IDEFICS3_TEMPLATE = _idefics_template("<|begin_of_text|>")
# HuggingFaceTB/SmolVLM-*-Instruct: "<|im_start|>User:..."; <|im_start|> is the BOS, never added on encode.
SMOLVLM_TEMPLATE = _idefics_template("<|im_start|>")


def _idefics_config(config_class: type, tokenizer: object) -> object:
    return config_class(
        vision_config=dict(SIGLIP_VISION),
        text_config={"model_type": "llama", **tiny_llama_text(tokenizer)},
        scale_factor=2,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
    )


def build_idefics3(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Idefics3 (``idefics3``): SigLIP, pixel shuffle, Llama-3; BOS in the template and on encode."""
    out = prepare(out_dir, seed)
    specials = ["<fake_token_around_image>", "<image>", "<global-img>", "<end_of_utterance>", *GRID_TOKENS]
    tokenizer = make_tokenizer(
        specials,
        chat_template=IDEFICS3_TEMPLATE,
        bos="<|begin_of_text|>",
        eos="<end_of_utterance>",
        pad="<|finetune_right_pad_id|>",
        add_bos=True,
    )
    config = _idefics_config(Idefics3Config, tokenizer)
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessor(
            size={"longest_edge": IMAGE_SIZE},
            max_image_size={"longest_edge": IMAGE_SIZE},
            do_image_splitting=False,
        ),
        tokenizer=tokenizer,
        image_seq_len=(IMAGE_SIZE // PATCH) ** 2 // 4,
        chat_template=IDEFICS3_TEMPLATE,
    )
    return save_checkpoint(out, Idefics3ForConditionalGeneration(config), processor, tokenizer)


def build_smolvlm(out_dir: str | Path, *, seed: int = 0) -> Path:
    """SmolVLM (``smolvlm``): Idefics3 layout, SmolLM2; the processor needs the ``num2words`` package."""
    out = prepare(out_dir, seed)
    specials = [
        "<|endoftext|>",
        "<fake_token_around_image>",
        "<image>",
        "<global-img>",
        "<end_of_utterance>",
        "<video>",
        *GRID_TOKENS,
    ]
    tokenizer = make_tokenizer(
        specials,
        chat_template=SMOLVLM_TEMPLATE,
        bos="<|im_start|>",
        eos="<end_of_utterance>",
        pad="<|endoftext|>",
    )
    config = _idefics_config(SmolVLMConfig, tokenizer)
    image_processor_kwargs = {
        "size": {"longest_edge": IMAGE_SIZE},
        "max_image_size": {"longest_edge": IMAGE_SIZE},
        "do_image_splitting": False,
    }
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(**image_processor_kwargs),
        video_processor=SmolVLMVideoProcessor(
            size={"longest_edge": IMAGE_SIZE}, max_image_size={"longest_edge": IMAGE_SIZE}
        ),
        tokenizer=tokenizer,
        image_seq_len=(IMAGE_SIZE // PATCH) ** 2 // 4,
        chat_template=SMOLVLM_TEMPLATE,
    )
    return save_checkpoint(out, SmolVLMForConditionalGeneration(config), processor, tokenizer)
