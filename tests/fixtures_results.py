"""lmms-eval-shaped result folders without a model, for the report and submission tests.

A simulated model with a planted balance point answers synthetic dataset rows; its responses are the
project's envelopes (the ``modality_conflict_hf`` wrapper's output format), and they go through the task's
own ``process_results`` and aggregation functions. The files are written in lmms-eval 0.7.3's layout:
``OUTPUT/<model folder>/<date_id>_results.json`` and ``<date_id>_samples_<task>.jsonl``, plus the
report file that the project's hook writes beside them (``<date_id>_modality_conflict.json``).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from modality_conflict.dataset_builder.constants import (
    COLORS,
    CONDITIONS,
    CONTROL_TEXT_TIER,
    CONTROL_VISUAL_TIERS,
    CONTROLS,
    QUESTION_TEMPLATE,
    SHAPES,
)
from modality_conflict.mc_tasks import task_logic
from modality_conflict.mc_tasks.names import METRIC_NAMES, RECORD_KEY
from modality_conflict.mc_tasks.records import summarize_records
from modality_conflict.mc_tasks.report_file import write_report_file
from modality_conflict.models.envelope import encode_envelope

TASK = "modality_conflict_color"
DATASET_REPO = "modality-conflict/color-conflict"
DATASET_REVISION = "0123456789abcdef0123456789abcdef01234567"
VISUAL_TIERS = (0, 2, 4, 7, 10, 13)
TEXT_TIERS = (0, 1, 2)
TEXT_TEMPLATES = (
    "The {shape} is {color}.",
    "The {shape}'s color is the same as a ball. The ball is {color}.",
)


def synthetic_docs(n_groups: int = 24, *, with_controls: bool = True) -> list[dict[str, Any]]:
    """Dataset rows in the contract's layout, ClassLabel columns as integers (as ``datasets`` gives them).

    Parameters
    ----------
    n_groups
        Item groups; each has a vision-only row per visual tier, a text-only row per text tier, and a
        conflict row per (visual tier, text tier), plus control rows on a few tiers.
    with_controls
        Add text-irrelevant and image-irrelevant control rows.
    """
    rows: list[dict[str, Any]] = []
    controls = CONTROLS if with_controls else ("none",)
    for group in range(n_groups):
        shape = SHAPES[group % len(SHAPES)]
        vision = (group * 5) % len(COLORS)
        for control in controls:
            tiers_v = (
                VISUAL_TIERS
                if control == "none"
                else tuple(t for t in VISUAL_TIERS if t in CONTROL_VISUAL_TIERS)
            )
            tiers_t = TEXT_TIERS if control == "none" else (CONTROL_TEXT_TIER,)
            base = {
                "control": CONTROLS.index(control),
                "group_id": group,
                "shape": shape,
                "question": QUESTION_TEMPLATE.format(shape=shape),
                "vision_answer": vision,
                "answer_choices": list(COLORS),
                "image": None,
            }
            texts = {}
            for dt in tiers_t:
                text_answer = (vision + 1 + (group + dt) % (len(COLORS) - 1)) % len(COLORS)
                template = TEXT_TEMPLATES[dt % len(TEXT_TEMPLATES)]
                texts[dt] = (text_answer, template.format(shape=shape, color=COLORS[text_answer]))
            for dv in tiers_v:
                key = f"g{group:04d}-v{dv:02d}-{control}"
                rows.append(
                    {
                        **base,
                        "row_id": key,
                        "condition": CONDITIONS.index("vision_only"),
                        "item_id": "",
                        "vision_key": key,
                        "text_key": "",
                        "visual_tier": dv,
                        "text_tier": -1,
                        "text": "",
                        "template_id": "",
                        "text_answer": texts[tiers_t[0]][0],
                    }
                )
            for dt, (text_answer, text) in texts.items():
                key = f"g{group:04d}-t{dt}-{control}"
                rows.append(
                    {
                        **base,
                        "row_id": key,
                        "condition": CONDITIONS.index("text_only"),
                        "item_id": "",
                        "vision_key": "",
                        "text_key": key,
                        "visual_tier": -1,
                        "text_tier": dt,
                        "text": text,
                        "template_id": f"t{dt}-0",
                        "text_answer": text_answer,
                    }
                )
            for dv in tiers_v:
                for dt, (text_answer, text) in texts.items():
                    item = f"g{group:04d}-v{dv:02d}-t{dt}-{control}"
                    rows.append(
                        {
                            **base,
                            "row_id": item,
                            "condition": CONDITIONS.index("conflict"),
                            "item_id": item,
                            "vision_key": f"g{group:04d}-v{dv:02d}-{control}",
                            "text_key": f"g{group:04d}-t{dt}-{control}",
                            "visual_tier": dv,
                            "text_tier": dt,
                            "text": text,
                            "template_id": f"t{dt}-0",
                            "text_answer": text_answer,
                        }
                    )
    return rows


def simulate_responses(
    docs: list[dict[str, Any]], *, balance_point: float, slope: float = 5.0, seed: int = 0
) -> list[str]:
    """Envelope responses of a model whose P(follow text) = sigmoid(-slope * (dH - balance_point)).

    Vision entropy rises with the visual tier and text entropy with the text tier (with noise), so dH
    spans the whole range; the conflict answer is drawn from the planted curve, with a few "other" answers.
    """
    rng = np.random.default_rng(seed)
    hv: dict[str, float] = {}
    ht: dict[str, float] = {}
    for doc in docs:
        if doc["vision_key"] and doc["vision_key"] not in hv:
            hv[doc["vision_key"]] = float(0.15 + 0.12 * doc["visual_tier"]) * float(rng.lognormal(0.0, 0.35))
        if doc["text_key"] and doc["text_key"] not in ht:
            ht[doc["text_key"]] = float(0.25 + 0.45 * doc["text_tier"]) * float(rng.lognormal(0.0, 0.35))
    responses = []
    for doc in docs:
        condition = CONDITIONS[doc["condition"]]
        vision, text = COLORS[doc["vision_answer"]], COLORS[doc["text_answer"]]
        if condition == "vision_only":
            entropy = hv[doc["vision_key"]]
            answer = (
                vision
                if rng.random() > 0.03 * doc["visual_tier"] / 13
                else COLORS[(doc["vision_answer"] + 3) % 6]
            )
        elif condition == "text_only":
            entropy, answer = ht[doc["text_key"]], text
        else:
            entropy = None
            v, t = hv[doc["vision_key"]], ht[doc["text_key"]]
            dh = 2.0 * (t - v) / (t + v)
            p_text = 1.0 / (1.0 + math.exp(slope * (dh - balance_point)))
            draw = rng.random()
            answer = "gray" if draw < 0.03 else (text if rng.random() < p_text else vision)
        # First-token log-probabilities as a real model gives them: they sum to less than 1, and the
        # candidates' share of the entropy stays below the (simulated) full-vocabulary entropy.
        logprobs = {color: (-0.001 if color == answer else -30.0) for color in COLORS}
        responses.append(
            encode_envelope(
                text=f"{answer.capitalize()}.",
                entropy=entropy,
                estimator="full_vocab",
                answer_logprobs=logprobs,
            )
        )
    return responses


def _dataset_used(dataset_path: str) -> dict[str, Any] | None:
    """What the data hook records for a run on a local built folder (None for a Hub path)."""
    from modality_conflict.dataset_builder.canonical import KNOWN_DATASETS
    from modality_conflict.dataset_builder.folder import DatasetFolder

    published = next((spec for spec in KNOWN_DATASETS.values() if spec.repo_id == dataset_path), None)
    if published is not None:  # a run on the pinned data, as the data hook records it
        source = {"source": "cache", "path": "/cache/" + published.cache_name, "revision": None}
        return {**source, "fingerprint": published.fingerprint, "canonical": True}
    folder = DatasetFolder(Path(dataset_path))
    if not folder.is_dir or folder.manifest is None:
        return None
    fingerprint = folder.fingerprint
    return {
        "source": "env",
        "path": dataset_path,
        "revision": None,
        "fingerprint": fingerprint,
        "canonical": fingerprint in KNOWN_DATASETS,
    }


def _task_config(task: str, dataset_path: str, revision: str | None) -> dict[str, Any]:
    kwargs = {"revision": revision} if revision is not None else {}
    used = _dataset_used(dataset_path)
    return {
        "task": task,
        "dataset_path": dataset_path,
        "dataset_kwargs": kwargs,
        "test_split": "test",
        "full_docs": False,
        "process_results_use_image": False,
        "doc_to_visual": "<function doc_to_visual at 0x7f0000000000>",
        "doc_to_text": "<function doc_to_text at 0x7f0000000001>",
        "doc_to_target": "<function doc_to_target at 0x7f0000000002>",
        "process_results": "<function process_results at 0x7f0000000003>",
        "description": "",
        "target_delimiter": " ",
        "fewshot_delimiter": "\n\n",
        "num_fewshot": 0,
        "metric_list": [
            {"metric": name, "aggregation": f"<function aggregate_{name}>", "higher_is_better": True}
            for name in METRIC_NAMES
        ],
        "output_type": "generate_until",
        "generation_kwargs": {
            "max_new_tokens": 8,
            "temperature": 0,
            "do_sample": False,
            "num_beams": 1,
            "until": ["\n\n"],
        },
        "repeats": 1,
        "should_decontaminate": False,
        "metadata": {"version": 1, "paper": "arXiv:2511.02243", **({"dataset_used": used} if used else {})},
        "lmms_eval_specific_kwargs": {
            "default": {"pre_prompt": "", "post_prompt": ""},
            "pre_prompt": "",
            "post_prompt": "",
        },
    }


def write_lmms_eval_run(
    output_path: Path,
    *,
    model_id: str = "example-org/mllm-tiny",
    model_revision: str | None = "fedcba9876543210fedcba9876543210fedcba98",
    balance_point: float = -0.4,
    n_groups: int = 24,
    seed: int = 0,
    task: str = TASK,
    date_id: str = "20251125_101500",
    dataset_path: str = DATASET_REPO,
    dataset_revision: str | None = DATASET_REVISION,
    docs: list[dict[str, Any]] | None = None,
) -> Path:
    """Write one run of a simulated model as lmms-eval 0.7.3 would, and return the model folder.

    Parameters
    ----------
    output_path
        lmms-eval's ``--output_path``; the model folder is created below it.
    model_id, model_revision
        What ``--model_args pretrained=...,revision=...`` would have said.
    balance_point
        The dH at which the simulated model follows the text half of the time.
    docs
        Dataset rows to answer; default :func:`synthetic_docs` with ``n_groups``.
    """
    docs = synthetic_docs(n_groups) if docs is None else docs
    responses = simulate_responses(docs, balance_point=balance_point, seed=seed)
    samples, records = [], []
    for doc_id, (doc, response) in enumerate(zip(docs, responses, strict=True)):
        metrics = task_logic.process_results(doc, [response])
        records.append(metrics[RECORD_KEY])
        saved_doc = {key: value for key, value in doc.items() if key != "image"}
        sample = {
            "doc_id": doc_id,
            "target": str(task_logic.doc_to_target(doc)),
            "filtered_resps": response,
            "token_counts": [None],
            "doc_hash": hashlib.sha256(
                json.dumps(saved_doc, indent=2, ensure_ascii=False).encode()
            ).hexdigest(),
            **metrics,
            "input": task_logic.doc_to_text(doc),
        }
        samples.append(sample)
    task_metrics: dict[str, Any] = {"alias": task}
    for name in METRIC_NAMES:
        task_metrics[f"{name},none"] = getattr(task_logic, f"aggregate_{name}")(records)
        task_metrics[f"{name}_stderr,none"] = "N/A"
    args = (
        f"pretrained={model_id}" + (f",revision={model_revision}" if model_revision else "") + ",device=cpu"
    )
    folder_name = "__".join(model_id.split("/")[-2:])
    results = {
        "results": {"modality_conflict": {"alias": "modality_conflict"}, task: task_metrics},
        "group_subtasks": {task: [], "modality_conflict": [task]},
        "configs": {task: _task_config(task, dataset_path, dataset_revision)},
        "versions": {"modality_conflict": 1, task: 1},
        "n-shot": {task: 0},
        "higher_is_better": {task: {name: True for name in METRIC_NAMES}},
        "n-samples": {task: {"original": len(docs), "effective": len(docs)}},
        "config": {
            "model": "modality_conflict_hf",
            "model_args": args,
            "model_backend": "modality_conflict.models.hf_model.ModalityConflictHF (generate_until)",
            "batch_size": "1",
            "batch_sizes": [],
            "device": None,
            "use_cache": None,
            "limit": None,
            "offset": 0,
            "bootstrap_iters": 0,
            "gen_kwargs": "",
            "random_seed": 0,
            "numpy_seed": 1234,
            "torch_seed": 1234,
            "fewshot_seed": 1234,
        },
        "git_hash": "1a2b3c4",
        "git_branch": "main",
        "lmms_eval_version": "main@1a2b3c4d",
        "date": date_id,
        "task_hashes": {task: hashlib.sha256(b"".join(s["doc_hash"].encode() for s in samples)).hexdigest()},
        "model_source": "modality_conflict_hf",
        "model_name": model_id,
        "model_name_sanitized": folder_name,
        "system_instruction": None,
        "system_instruction_sha": None,
        "fewshot_as_multiturn": False,
        "chat_template": None,
        "chat_template_sha": None,
        "start_time": 100.0,
        "end_time": 160.0,
        "total_evaluation_time_seconds": "60.0",
    }
    folder = Path(output_path) / folder_name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{date_id}_results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    with (folder / f"{date_id}_samples_{task}.jsonl").open("w", encoding="utf-8") as handle:
        for sample in samples:
            handle.write(json.dumps(sample, ensure_ascii=False) + "\n")
    # What the project's hook writes beside lmms-eval's results: the task's whole summary.
    write_report_file(
        folder / f"{date_id}_modality_conflict.json",
        {task: summarize_records(records)},
        results_name=f"{date_id}_results.json",
    )
    return folder
