"""Image-prefix sharing side by side: vision-tower calls, prefill tokens and wall time, shared vs whole.

All methods run in one process on the same checkpoint and the same lmms-eval requests (built by lmms-eval
from the colour set), image by image in rotating order, so that a busy moment of a shared machine hits
them alike:

``shared``
    ``modality_conflict_hf`` as it runs by default: each image encoded once, its prompts continuing one
    cached prefix, answers stopped once they name a candidate.
``whole``
    ``modality_conflict_hf`` with ``share_images=False``: every prompt encoded whole (the early stop on).
``shared_full_length``
    ``shared`` with ``early_stop=False``: every answer runs to an end token or ``max_new_tokens``; its
    decoding steps are the "before" of the early stop, and its parsed answers are compared with the
    stopped ones.
``llava_hf``
    lmms-eval's stock ``llava_hf`` ``generate_until`` (answer text only, no entropy, no lens; batch size 1,
    the only one it supports) on the image prompts (it cannot answer text-only prompts); its throughput is
    compared with the wrappers' on the same image prompts.

Checkpoints (``--model``):

``smollm2_576``
    LLaVA-1.5's vision geometry (336 px images, 14 px patches: 576 image tokens, random vision weights)
    around the real SmolLM2-135M-Instruct language model. Measured on the first ``--images`` images of the
    colour set, with every prompt that shows them and the text-only prompts of their conflict items.
``tiny``
    The tiny random LLaVA (16 image tokens), and ``tiny_qwen2_vl`` / ``tiny_idefics3`` (multimodal RoPE;
    image splitting), on whole item groups.

Figures per checkpoint: vision-tower rows per distinct image, prefill tokens per conflict item and per
prompt, wall time per conflict item and per prompt, decoding steps per prompt with and without the early
stop, the largest difference between shared and whole-prompt envelopes (entropy, answer log-probabilities,
lens logits; the answers themselves must be equal), and the throughput of ``shared`` against
``llava_hf``.

Usage::

    python benchmarks/bench_sharing.py [--model smollm2_576|tiny|tiny_qwen2_vl|tiny_idefics3]
        [--images 6] [--groups 2] [--batch-size 8] [--threads 1] [--out benchmarks/results_sharing.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_common

bench_common.set_offline_env()

import torch  # noqa: E402

CONDITIONS = ("vision_only", "text_only", "conflict")
MODELS = {
    "smollm2_576": "LLaVA-1.5 vision geometry (336 px, patch 14: 576 image tokens, random CLIP) around the "
    "real SmolLM2-135M-Instruct",
    "tiny": "tiny LLaVA (random weights, 16 image tokens; tiny_zoo.build('llava'))",
    "tiny_qwen2_vl": "tiny Qwen2-VL (random weights, multimodal RoPE; tiny_zoo.build('qwen2_vl'))",
    "tiny_idefics3": "tiny Idefics3 (random weights, image splitting; tiny_zoo.build('idefics3'))",
}


def checkpoint(model: str, work: Path) -> Path:
    """Build (or reuse) the checkpoint folder of ``model``."""
    folder = work / model
    if (folder / "config.json").exists() and any(folder.glob("*.safetensors")):
        return folder
    if model == "smollm2_576":
        from modality_conflict.models.smollm2_llava import build_smollm2_llava

        return build_smollm2_llava(folder, seed=0, image_size=336, patch_size=14)
    from tiny_zoo import build

    return build(model.removeprefix("tiny_") if model != "tiny" else "llava", folder, seed=0)


@dataclass
class Method:
    """One way of answering and what it cost."""

    name: str
    lm: Any
    image_prompts_only: bool = False
    wall_seconds: float = 0.0
    image_prompt_seconds: float = 0.0
    responses: dict[int, str] = field(default_factory=dict)

    def run(self, requests: list[Any]) -> None:
        if self.image_prompts_only:
            requests = [r for r in requests if _has_image(r)]
        if not requests:
            return
        started = time.perf_counter()
        out = self.lm.generate_until(requests)
        elapsed = time.perf_counter() - started
        self.wall_seconds += elapsed
        if all(_has_image(r) for r in requests):
            self.image_prompt_seconds += elapsed
        for request, response in zip(requests, out, strict=True):
            self.responses[request.doc_id] = response


def _has_image(request: Any) -> bool:
    return bool(request.metadata.get("has_image"))


class TowerCounter:
    """Rows (images) through a module's forward: a pre-hook on the vision tower."""

    def __init__(self, module: Any) -> None:
        self.rows = 0
        self.calls = 0
        module.register_forward_pre_hook(self._count)

    def _count(self, _module: Any, args: Any) -> None:
        self.calls += 1
        pixels = args[0] if args else None
        self.rows += int(pixels.shape[0]) if isinstance(pixels, torch.Tensor) and pixels.ndim >= 4 else 1


class TokenCounter:
    """Prompt tokens run through a model (multi-token passes, padding excluded) and one-token steps."""

    def __init__(self, model: Any) -> None:
        self.prefill = 0
        self.steps = 0
        model.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, _module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if not isinstance(ids, torch.Tensor):
            return
        width = ids.shape[-1]
        if width == 1 and kwargs.get("cache") is not None:
            self.steps += ids.shape[0]
            return
        mask = kwargs.get("attention_mask")
        self.prefill += int(mask[:, -width:].sum()) if isinstance(mask, torch.Tensor) else ids.numel()


def _select(task: Any, model: str, images: int, groups: int) -> tuple[list[Any], dict[int, str]]:
    """The requests measured and each document's condition.

    ``smollm2_576``: the first ``images`` vision-only images and every row showing them, plus the
    text-only rows their conflict rows refer to. Tiny models: every row of the first ``groups`` groups.
    """
    dataset = task.dataset["test"].remove_columns("image")
    rows = dataset.to_list()
    conditions = {i: CONDITIONS[r["condition"]] for i, r in enumerate(rows)}
    if model == "smollm2_576":
        keys: list[str] = []
        for r in rows:
            if r["condition"] == 0 and r["vision_key"] not in keys:
                keys.append(r["vision_key"])
            if len(keys) == images:
                break
        chosen = {i for i, r in enumerate(rows) if r["condition"] != 1 and r["vision_key"] in keys}
        text_keys = {rows[i]["text_key"] for i in chosen if rows[i]["condition"] == 2}
        chosen |= {i for i, r in enumerate(rows) if r["condition"] == 1 and r["row_id"] in text_keys}
    else:
        chosen = {i for i, r in enumerate(rows) if r["group_id"] < groups}
    requests = [instance for instance in task.instances if instance.doc_id in chosen]
    for request in requests:
        request.metadata["has_image"] = conditions[request.doc_id] != "text_only"
    return requests, conditions


def _by_image(requests: list[Any], task: Any) -> list[list[Any]]:
    """Requests in runs that show the same image (text-only rows last, as one run)."""
    dataset = task.dataset["test"].remove_columns("image")
    vision_key = dataset["vision_key"]
    runs: dict[str, list[Any]] = {}
    for request in requests:
        key = vision_key[request.doc_id] if request.metadata["has_image"] else "~text"
        runs.setdefault(key, []).append(request)
    return [runs[key] for key in sorted(runs)]


def _envelope_gap(left: dict[int, str], right: dict[int, str]) -> dict[str, Any]:
    """Largest differences between two methods' envelopes over the documents both answered."""
    from modality_conflict.models.envelope import decode_envelope

    same_text = n = 0
    gap = 0.0
    for doc_id, response in left.items():
        a, b = decode_envelope(response), decode_envelope(right.get(doc_id))
        if a is None or b is None:
            continue
        n += 1
        same_text += a["text"] == b["text"]
        values = [(a["entropy"] or 0.0) - (b["entropy"] or 0.0)]
        values += [a["answer_logprobs"][k] - b["answer_logprobs"][k] for k in a.get("answer_logprobs", {})]
        lens_a, lens_b = a.get("lens"), b.get("lens")
        if lens_a and lens_b:
            for key in ("answer_logits", "answer_logits_capitalized"):
                for la, lb in zip(lens_a[key], lens_b[key], strict=True):
                    values += [x - y for x, y in zip(la, lb, strict=True) if x is not None and y is not None]
        gap = max(gap, max(abs(v) for v in values))
    return {"prompts": n, "same_text": same_text, "max_abs_difference": gap}


def _steps_and_answers(
    stopped: dict[int, str], full: dict[int, str], docs: Any, conditions: dict[int, str]
) -> dict[str, Any]:
    """Decoding steps with and without the early stop, and whether the parsed answers agree."""
    from modality_conflict.dataset_builder.constants import COLOR_SYNONYMS, COLORS
    from modality_conflict.metrics.answers import normalize_answer
    from modality_conflict.models.envelope import decode_envelope

    steps_stopped, steps_full, changed, named = [], [], [], 0
    for doc_id, response in stopped.items():
        a, b = decode_envelope(response), decode_envelope(full.get(doc_id))
        if a is None or b is None:
            continue
        steps_stopped.append(a["decode_steps"])
        steps_full.append(b["decode_steps"])
        left = normalize_answer(a["text"], COLORS, synonyms=COLOR_SYNONYMS)
        right = normalize_answer(b["text"], COLORS, synonyms=COLOR_SYNONYMS)
        named += right != "other"
        if left != right:
            changed.append({"doc": doc_id, "stopped": a["text"], "full": b["text"]})
    count = max(len(steps_full), 1)
    text_only = [
        decode_envelope(full[d])["text"]
        for d in full
        if conditions[d] == "text_only" and decode_envelope(full[d])
    ]
    return {
        "prompts": len(steps_full),
        "steps_per_prompt_full_length": round(sum(steps_full) / count, 3),
        "steps_per_prompt_early_stop": round(sum(steps_stopped) / count, 3),
        "answers_naming_a_colour_full_length": named,
        "parsed_answers_changed": len(changed),
        "changed_examples": changed[:10],
        "text_only_answers_full_length_examples": sorted(set(text_only))[:12],
        "rows": len(docs),
    }


def run(model: str, *, images: int, groups: int, batch_size: int, threads: int, work: Path) -> dict[str, Any]:
    """Run every method over the selected requests and return the figures."""
    torch.set_num_threads(threads)
    folder = checkpoint(model, work)
    data_dir = bench_common.ensure_dataset(work / f"data_g{max(groups, 1)}", max(groups, 1))
    task = bench_common.lmms_eval_tasks(data_dir, ["modality_conflict_color"])["modality_conflict_color"]
    requests, conditions = _select(task, model, images, groups)
    runs = _by_image(requests, task)

    from modality_conflict.models.hf_model import ModalityConflictHF
    from modality_conflict.models.sharing import vision_tower

    load = {"pretrained": str(folder), "device": "cpu", "device_map": "cpu", "batch_size": batch_size}
    lms = {
        "shared": ModalityConflictHF(**load),
        "whole": ModalityConflictHF(**load, share_images=False),
        "shared_full_length": ModalityConflictHF(**load, early_stop=False),
    }
    methods = [Method(name, lm) for name, lm in lms.items()]
    with_llava_hf = "llava" in str(getattr(lms["shared"].model.config, "model_type", ""))
    if with_llava_hf:
        from lmms_eval.models.simple.llava_hf import LlavaHf

        stock = LlavaHf(pretrained=str(folder), device="cpu", device_map="cpu", dtype="float32")
        methods.append(Method("llava_hf", stock, image_prompts_only=True))
        lms["llava_hf"] = stock
    towers, tokens = {}, {}
    for name, lm in lms.items():
        lm.task_dict.update({"modality_conflict_color": task.dataset})
        towers[name] = TowerCounter(vision_tower(lm.model))
        tokens[name] = TokenCounter(lm.model)

    # Warm-up (lazy initialisation in torch and transformers) on one run, then reset the counters.
    for method in methods:
        method.run(runs[0][:2])
        method.wall_seconds = method.image_prompt_seconds = 0.0
        method.responses.clear()
    for name in lms:
        towers[name].rows = towers[name].calls = 0
        tokens[name].prefill = tokens[name].steps = 0

    started = time.perf_counter()
    for step, run_requests in enumerate(runs):
        shift = step % len(methods)
        for method in methods[shift:] + methods[:shift]:
            method.run(run_requests)
    measured = time.perf_counter() - started

    docs = {r.doc_id for r in requests}
    n_items = sum(conditions[d] == "conflict" for d in docs)
    n_images = len([run for run in runs if run[0].metadata["has_image"]])
    n_image_prompts = sum(conditions[d] != "text_only" for d in docs)
    figures: dict[str, Any] = {}
    for method in methods:
        prompts = len(method.responses)
        figures[method.name] = {
            "prompts": prompts,
            "wall_seconds": round(method.wall_seconds, 3),
            "image_prompt_seconds": round(method.image_prompt_seconds, 3),
            "ms_per_prompt": round(1000 * method.wall_seconds / max(prompts, 1), 2),
            "ms_per_conflict_item": round(1000 * method.wall_seconds / max(n_items, 1), 2),
            "vision_tower_calls": towers[method.name].calls,
            "vision_tower_rows": towers[method.name].rows,
            "vision_rows_per_image": round(towers[method.name].rows / max(n_images, 1), 3),
            "prefill_tokens": tokens[method.name].prefill,
            "prefill_tokens_per_prompt": round(tokens[method.name].prefill / max(prompts, 1), 1),
            "prefill_tokens_per_conflict_item": round(tokens[method.name].prefill / max(n_items, 1), 1),
            "decoding_steps": tokens[method.name].steps,
        }
    shared, whole = figures["shared"], figures["whole"]

    def ratio(top: float, bottom: float) -> float:
        return round(top / max(bottom, 1e-9), 2)

    ratios = {
        "prefill_tokens_whole_over_shared": ratio(whole["prefill_tokens"], shared["prefill_tokens"]),
        "wall_time_whole_over_shared": ratio(whole["wall_seconds"], shared["wall_seconds"]),
        "vision_rows_whole_over_shared": ratio(whole["vision_tower_rows"], shared["vision_tower_rows"]),
    }
    if with_llava_hf:
        # The same image prompts (llava_hf cannot answer text-only ones): ours with entropy and lens.
        ratios["llava_hf_wall_over_shared_on_image_prompts"] = ratio(
            figures["llava_hf"]["wall_seconds"], figures["shared"]["image_prompt_seconds"]
        )
        ratios["llava_hf_wall_over_whole_on_image_prompts"] = ratio(
            figures["llava_hf"]["wall_seconds"], figures["whole"]["image_prompt_seconds"]
        )
    return {
        "benchmark": "image_prefix_sharing",
        "model_name": model,
        "checkpoint": MODELS[model],
        "image_tokens": _image_tokens(lms["shared"]),
        "batch_size": batch_size,
        "torch_threads": threads,
        "rows": len(docs),
        "image_prompts": n_image_prompts,
        "distinct_images": n_images,
        "conflict_items": n_items,
        "measured_seconds": round(measured, 2),
        "methods": figures,
        "ratios": ratios,
        "shared_vs_whole": _envelope_gap(methods[0].responses, methods[1].responses),
        "early_stop": _steps_and_answers(methods[0].responses, methods[2].responses, docs, conditions),
        "wrapper_stats": {name: vars(lm.stats) for name, lm in lms.items() if hasattr(lm, "stats")},
    }


def _image_tokens(wrapper: Any) -> int | None:
    config = wrapper.model.config
    vision = getattr(config, "vision_config", None)
    size, patch = getattr(vision, "image_size", None), getattr(vision, "patch_size", None)
    if config.model_type == "llava" and size and patch:
        return (size // patch) ** 2
    return None


def format_summary(report: dict[str, Any]) -> str:
    """A short plain-text table of the figures."""
    lines = [
        f"{report['checkpoint']}: {report['rows']} prompts ({report['image_prompts']} with images, "
        f"{report['distinct_images']} distinct images, {report['conflict_items']} conflict items), "
        f"batch {report['batch_size']}, {report['torch_threads']} thread(s)",
        f"{'method':22} {'ms/prompt':>10} {'ms/item':>10} {'tower rows/image':>16} {'prefill/item':>12}",
    ]
    for name, m in report["methods"].items():
        lines.append(
            f"{name:22} {m['ms_per_prompt']:10.1f} {m['ms_per_conflict_item']:10.1f} "
            f"{m['vision_rows_per_image']:16.2f} {m['prefill_tokens_per_conflict_item']:12.1f}"
        )
    lines.append("ratios: " + ", ".join(f"{k} {v:.2f}x" for k, v in report["ratios"].items()))
    gap, stop = report["shared_vs_whole"], report["early_stop"]
    lines.append(
        f"shared vs whole: same text on {gap['same_text']}/{gap['prompts']} prompts, largest difference "
        f"{gap['max_abs_difference']:.2e}"
    )
    lines.append(
        f"decoding steps/prompt: {stop['steps_per_prompt_full_length']:.2f} full length, "
        f"{stop['steps_per_prompt_early_stop']:.2f} with the early stop; parsed answers changed: "
        f"{stop['parsed_answers_changed']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="smollm2_576")
    parser.add_argument("--images", type=int, default=6, help="images measured (smollm2_576)")
    parser.add_argument("--groups", type=int, default=2, help="item groups measured (tiny models)")
    parser.add_argument("--batch-size", type=int, default=8, help="the wrappers' batch_size")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--work", type=Path, help="folder for checkpoints and data (default: temp)")
    parser.add_argument(
        "--out", type=Path, default=bench_common.HERE / "results_sharing.json", help="JSON report path"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mc-bench-sharing-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        report = run(
            args.model,
            images=args.images,
            groups=args.groups,
            batch_size=args.batch_size,
            threads=args.threads,
            work=work,
        )
    report["machine"] = bench_common.machine_info()
    bench_common.write_report(report, args.out)
    print(format_summary(report))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
