"""The demo model's words and images: a word-level tokenizer over every word a prompt, a training text
or an answer can contain, its chat template, and a LLaVA-1.5 style processor."""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import CLIPImageProcessor, LlavaProcessor, PreTrainedTokenizerFast

from modality_conflict.dataset_builder.atomic import write_text_atomic
from modality_conflict.dataset_builder.constants import ANSWER_COMMAND, COLORS, QUESTION_TEMPLATE, SHAPES
from modality_conflict.dataset_builder.texts import INTERMEDIARY_OBJECTS, TEMPLATES, WORLD_OBJECTS

IMAGE_SIZE = 112
PATCH_SIZE = 16
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2

_SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>", "<image>")
IMAGE_TOKEN = "<image>"

#: The direct texts of training, fixed here so that the packaged weights do not move when the builder's
#: templates do: one of them ("has a ... color") is no longer an evaluation template, so evaluation holds a
#: direct phrasing the model never saw.
TRAINING_DIRECT_TEMPLATES = (
    "The {a} is {t}.",
    "The color of the {a} is {t}.",
    "The {a} has a {t} color.",
    "The {a} is painted {t}.",
)

#: Training-only sentence about an unrelated object, added to indirect texts so that the colour word of
#: the text is not always the answer.
FACT_TEMPLATE = "The {b} is {t}."


def chat_template() -> str:
    """LLaVA-1.5 style template: ``"USER: <image>\\n{text} ASSISTANT:"``; the answer follows a space."""
    content = (
        "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
        "{% for part in message['content'] %}"
        "{% if part['type'] == 'image' or 'image' in part %}<image>\n"
        "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    )
    return (
        "{% for message in messages %}"
        "{% if message['role'] == 'system' %}" + content + " "
        "{% elif message['role'] == 'user' %}USER: " + content + " "
        "{% else %}ASSISTANT: " + content + "{{ eos_token }}{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
    )


_WORD_SPLIT = pre_tokenizers.Whitespace()


def _words(text: str) -> list[str]:
    return [w for w, _ in _WORD_SPLIT.pre_tokenize_str(text.lower())]


def vocabulary() -> list[str]:
    """Every word a benchmark prompt, a training text or an answer can contain, lower-cased, sorted: built
    from the builder's own templates, so no evaluation prompt maps a word to ``<unk>``."""
    texts = [
        QUESTION_TEMPLATE.format(shape=" ".join(SHAPES)),
        ANSWER_COMMAND,
        "USER: ASSISTANT: system Say a word.",
        " ".join(COLORS),
        " ".join(INTERMEDIARY_OBJECTS),
        " ".join(" ".join(objs) for objs in WORLD_OBJECTS.values()),
        FACT_TEMPLATE.format(b="x", t="x"),
    ]
    texts += [t.format(a="x", t="x") for t in TRAINING_DIRECT_TEMPLATES]
    for templates in TEMPLATES.values():
        texts += [t.format(a="x", b="x", t="x", d="x") for t in templates]
    words: set[str] = set()
    for text in texts:
        words.update(_words(text))
    words.discard("x")
    return sorted(words)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level, lower-casing tokenizer over :func:`vocabulary` that starts every sequence with ``<s>``,
    with the chat template and a LLaVA checkpoint's special tokens."""
    vocab = {token: i for i, token in enumerate(_SPECIAL_TOKENS)}
    for word in vocabulary():
        vocab.setdefault(word, len(vocab))
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    tokenizer.add_special_tokens(list(_SPECIAL_TOKENS))
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
        padding_side="left",
    )
    wrapped.chat_template = chat_template()
    return wrapped


def build_processor(
    tokenizer: PreTrainedTokenizerFast | None = None, *, class_token: bool = False
) -> LlavaProcessor:
    """LLaVA processor: images squeezed to ``IMAGE_SIZE`` square without cropping (no target is cut off)."""
    image_processor = CLIPImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_center_crop=False,
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer or build_tokenizer(),
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="full" if class_token else "default",
        num_additional_image_tokens=1,
        chat_template=chat_template(),
    )


def save_processor(processor: LlavaProcessor, out: Path) -> None:
    """Save the processor so that transformers 4.x reads its tokenizer too: 5.x writes a tokenizer class
    and special-token list that 4.x does not know."""
    processor.save_pretrained(out)
    path = Path(out) / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config["extra_special_tokens"] = {"image_token": IMAGE_TOKEN}
    write_text_atomic(path, json.dumps(config, indent=2, sort_keys=True) + "\n")
