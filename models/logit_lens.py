"""Logit lens for Hugging Face decoder MLLMs: what each layer would answer at the answer position.

Forward hooks keep each decoder layer's output at the last position (the wrapper pads on the left) of
the first pass only: ``n_layers x batch x hidden`` floats. ``output_hidden_states`` would materialise
every position, and in transformers 5 its last entry is already normed; with hooks every layer is a raw
residual-stream state, so the last layer's lens logits are the model's own. The multimodal class does not
always apply the text config's logit soft-capping or scale, so the lens is calibrated once at load.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from modality_conflict.dataset_builder.errors import ModalityConflictError

_NORM_NAMES = ("norm", "final_layernorm", "final_layer_norm", "ln_f", "norm_f")
_LAYER_NAMES = ("layers", "h", "blocks")


class UnsupportedModelError(ModalityConflictError):
    """The model's final norm, LM head or decoder layers could not be located."""


@dataclass(frozen=True)
class LensModules:
    """The pieces of a decoder the logit lens needs (layers input side first), with the LM head's output
    multiplier (Cohere) and soft-capping constant ``c`` of ``c * tanh(logits / c)`` (Gemma), if any."""

    final_norm: nn.Module
    lm_head: nn.Module
    decoder_layers: Sequence[nn.Module]
    logit_scale: float | None = None
    logit_softcap: float | None = None

    @property
    def n_layers(self) -> int:
        """Number of decoder layers."""
        return len(self.decoder_layers)


def _first_attr(module: nn.Module, names: Sequence[str]) -> Any:
    for name in names:
        value = getattr(module, name, None)
        if value is not None:
            return value
    return None


def _text_config(model: nn.Module) -> Any:
    config = getattr(model, "config", None)
    if config is None:
        return None
    get_text_config = getattr(config, "get_text_config", None)
    return get_text_config() if callable(get_text_config) else config


def find_lens_modules(model: nn.Module) -> LensModules:
    """Locate the final norm, LM head and decoder layers of a Hugging Face decoder (multimodal or not)."""
    name = type(model).__name__
    get_head = getattr(model, "get_output_embeddings", None)
    lm_head = get_head() if callable(get_head) else None
    if not isinstance(lm_head, nn.Module):
        raise UnsupportedModelError(f"logit lens: {name} has no LM head (get_output_embeddings() is None)")

    candidates: list[nn.Module] = []
    get_decoder = getattr(model, "get_decoder", None)
    if callable(get_decoder):
        try:
            decoder = get_decoder()
        except (AttributeError, NotImplementedError, ValueError):
            decoder = None
        if isinstance(decoder, nn.Module):
            candidates.append(decoder)
    for path in ("model.language_model", "language_model", "model.text_model", "text_model", "model"):
        module: Any = model
        for part in path.split("."):
            module = getattr(module, part, None)
        if isinstance(module, nn.Module) and all(module is not c for c in candidates):
            candidates.append(module)

    for decoder in candidates:
        norm = _first_attr(decoder, _NORM_NAMES)
        layers = _first_attr(decoder, _LAYER_NAMES)
        if isinstance(norm, nn.Module) and isinstance(layers, nn.ModuleList) and len(layers) > 0:
            config = _text_config(model)
            scale = getattr(config, "logit_scale", None)
            softcap = getattr(config, "final_logit_softcapping", None)
            return LensModules(
                final_norm=norm,
                lm_head=lm_head,
                decoder_layers=list(layers),
                logit_scale=float(scale) if isinstance(scale, (int, float)) else None,
                logit_softcap=float(softcap) if isinstance(softcap, (int, float)) else None,
            )
    raise UnsupportedModelError(
        f"logit lens: cannot find the final norm ({'/'.join(_NORM_NAMES)}) and decoder layers "
        f"({'/'.join(_LAYER_NAMES)}) of {name}; this architecture is not supported"
    )


class LastPositionRecorder:
    """Forward hooks that keep each decoder layer's output at the last position of the first pass
    (a context manager around the forward or ``generate`` call)."""

    def __init__(self, modules: LensModules) -> None:
        self._modules = modules
        self._states: list[torch.Tensor | None] = [None] * modules.n_layers
        self._handles: list[Any] = []

    def _hook(self, index: int) -> Any:
        def record(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if self._states[index] is not None:
                return  # a decoding step after the prompt pass
            hidden = output[0] if isinstance(output, (tuple, list)) else output
            self._states[index] = hidden[:, -1, :].detach()

        return record

    def reset(self) -> None:
        """Forget what was recorded, so that the next forward pass is recorded."""
        self._states = [None] * self._modules.n_layers

    def __enter__(self) -> LastPositionRecorder:
        self.reset()
        self._handles = [
            layer.register_forward_hook(self._hook(i)) for i, layer in enumerate(self._modules.decoder_layers)
        ]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def recorded(self) -> tuple[list[int], list[torch.Tensor]]:
        """The layers that ran since the last reset and their ``(batch, hidden)`` states; the last layer
        must have run (else no layer can be compared with the output)."""
        indices = [i for i, state in enumerate(self._states) if state is not None]
        if not indices or indices[-1] != len(self._states) - 1:
            raise RuntimeError("logit lens: the last decoder layer recorded nothing")
        return indices, [state for state in self._states if state is not None]


def _param_device(module: nn.Module, fallback: torch.device) -> torch.device:
    for parameter in module.parameters():
        return parameter.device
    return fallback


LENS_ROWS_PER_CALL = 64


@torch.no_grad()
def lens_logits(modules: LensModules, states: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
    """Yield each layer's next-token logits, ``(batch, vocab)`` float32, in layer order: several layers
    per LM-head call (about :data:`LENS_ROWS_PER_CALL` rows), so large vocabularies cost few products."""
    norm_device = _param_device(modules.final_norm, states[0].device)
    head_device = _param_device(modules.lm_head, norm_device)
    batch = states[0].shape[0]
    layers_per_call = max(1, LENS_ROWS_PER_CALL // max(batch, 1))
    for start in range(0, len(states), layers_per_call):
        chunk = torch.cat([state.to(norm_device) for state in states[start : start + layers_per_call]], dim=0)
        logits = modules.lm_head(modules.final_norm(chunk).to(head_device))
        if modules.logit_scale is not None:
            logits = logits * modules.logit_scale
        if modules.logit_softcap is not None:
            logits = torch.tanh(logits / modules.logit_softcap) * modules.logit_softcap
        yield from logits.float().split(batch, dim=0)


def _with_transform(modules: LensModules, scale: float | None, softcap: float | None) -> LensModules:
    return LensModules(modules.final_norm, modules.lm_head, modules.decoder_layers, scale, softcap)


@torch.no_grad()
def calibrate_lens(
    modules: LensModules,
    last_state: torch.Tensor,
    logits: torch.Tensor,
    *,
    model_name: str = "the model",
    tolerance: float = 1e-4,
) -> LensModules:
    """The lens whose last layer reproduces ``logits``, the model's own output on the same forward pass.

    Every combination of the text config's logit scale and soft-capping (with and without each) is tried,
    the configured one first; ``tolerance`` is relative to ``max(1, max |logits|)``.
    """
    target = logits.float()
    bound = tolerance * max(1.0, float(target.abs().max()))
    candidates = [(modules.logit_scale, modules.logit_softcap)]
    for scale in (modules.logit_scale, None):
        for softcap in (modules.logit_softcap, None):
            if (scale, softcap) not in candidates:
                candidates.append((scale, softcap))
    best = math.inf
    for scale, softcap in candidates:
        candidate = _with_transform(modules, scale, softcap)
        (last,) = lens_logits(candidate, [last_state])
        difference = float((last.to(target.device) - target).abs().max())
        if difference <= bound:
            return candidate
        best = min(best, difference)
    raise UnsupportedModelError(
        f"logit lens: the last layer of {model_name} does not reproduce its logits (max difference "
        f"{best:.3g} with and without the configured logit scale and soft-capping); run with lens=False"
    )


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def lens_records(
    modules: LensModules,
    states: Sequence[torch.Tensor],
    answer_token_ids: Mapping[str, int],
    decode: Any,
    *,
    extra_answer_token_ids: Mapping[str, Mapping[str, int]] | None = None,
    layer_indices: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """Per-prompt logit-lens records from one forward pass (JSON-safe; they go into the envelope).

    Each record holds the reported ``layer_indices`` (and ``skipped_layers``), every layer's top-1 token and
    the logits of each candidate's first token (``answer_token_ids``, in the task's order), plus one more
    table per ``extra_answer_token_ids`` set; non-finite logits become None.
    """
    answers = list(answer_token_ids)
    id_sets: dict[str, list[int]] = {"": [int(answer_token_ids[a]) for a in answers]}
    for name, mapping in (extra_answer_token_ids or {}).items():
        id_sets[f"_{name}"] = [int(mapping[a]) for a in answers]

    batch = states[0].shape[0]
    # Top-1 and the answers' logits stay on the device, layer by layer; one transfer at the end.
    every_id = [token for ids in id_sets.values() for token in ids]
    bests, values = [], []
    for logits in lens_logits(modules, states):
        bests.append(logits.argmax(dim=-1))
        values.append(logits[:, every_id])
    top1: list[list[int]] = torch.stack(bests, dim=1).tolist()
    table = torch.stack(values, dim=1)  # (batch, layers, every id)
    finite = bool(torch.isfinite(table).all())
    rows = table.tolist()
    picked: dict[str, list[list[list[float | None]]]] = {}
    offset = 0
    for key, ids in id_sets.items():
        end = offset + len(ids)
        picked[key] = [[layer[offset:end] for layer in row] for row in rows]
        if not finite:
            picked[key] = [[[_finite_or_none(v) for v in layer] for layer in row] for row in picked[key]]
        offset = end

    reported = list(layer_indices) if layer_indices is not None else list(range(len(states)))
    skipped = sorted(set(range(modules.n_layers)) - set(reported))
    token_text: dict[int, str] = {}
    records = []
    for row in range(batch):
        for token in top1[row]:
            if token not in token_text:
                token_text[token] = str(decode(token))
        record: dict[str, Any] = {
            "n_layers": len(reported),
            "layer_indices": reported,
            "skipped_layers": skipped,
            "top1_ids": top1[row],
            "top1_tokens": [token_text[t] for t in top1[row]],
        }
        for key, ids in id_sets.items():
            record[f"answer_token_ids{key}"] = dict(zip(answers, ids, strict=True))
            record[f"answer_logits{key}"] = picked[key][row]
        records.append(record)
    return records
