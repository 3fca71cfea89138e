"""Model calls and wall time per prompt: the project's wrapper against two ways of getting the same numbers.

All run in one process on the same random-weight tiny LLaVA checkpoint (built here) and the same
lmms-eval requests, built by lmms-eval itself from the small preset of the colour set (12 groups, 972
rows: every vision-only, text-only and conflict row, controls included):

``modality_conflict_hf``
    The project's wrapper on ``modality_conflict_color``: one ``generate`` call per prompt whose first
    step yields the answer, the full-vocabulary entropy and the logit lens. Every method here runs whole
    prompts to full length (``share_images=False, early_stop=False``); ``bench_sharing.py`` measures
    the image-prefix sharing and the early stop.
``llava_hf_loglikelihood``
    lmms-eval's ``llava_hf`` on ``modality_conflict_loglik``: one forward pass per candidate colour (6
    per prompt), the scores giving the answer and an answer-set entropy. ``llava_hf`` 0.7.3 calls the
    processor in ways transformers 5 rejects (the context alone, without its image, to measure its
    length; an empty image list for text-only prompts); a thin proxy tokenises the context with the
    tokenizer and drops the empty list, as transformers 4 did, and changes nothing else.
``generate_then_probe``
    The wrapper's prompts, with ``generate`` for the answer and then a second forward pass with
    ``output_hidden_states=True`` for the entropy, answer scores and logit lens (what a plugin would do
    on top of a generation-only wrapper; ``llava_hf``'s own ``generate_until`` cannot serve here: it
    has no inputs for text-only prompts).
``generate_only``
    A reference, not a way of getting the figures: the same prompts through a bare ``generate`` (answer
    text only). The wrapper's wall time against it is the cost of entropy, answer scores and lens.

Counts come from hooks on the top-level Hugging Face model:

- *model invocations*: calls into ``model.generate`` plus forward passes issued outside ``generate``
  (what a wrapper asks the model for; the goal "1 call per prompt" uses this definition);
- *prefill forwards*: forward passes over a whole prompt (no cached keys), i.e. full-sequence passes;
- *forward passes*: every forward pass, ``generate``'s one-token decoding steps included (the tiny
  model never emits end-of-sequence, so each ``generate`` runs all ``max_new_tokens`` = 8 steps).

A conflict triplet is three prompts (vision-only, text-only, conflict), so calls per triplet are three
times calls per prompt. The dataset shares unimodal rows between items, so calls per conflict item on
the actual rows are lower; both are reported. Requests are fed group by group, rotating the order of
the methods, so that a busy moment of a shared machine hits all of them alike. Torch runs on one
thread by default: on the tiny model two threads were 2-5x slower and far noisier on a busy 2-core
machine.

Usage::

    python benchmarks/bench_models.py [--groups 12] [--threads 1] [--out benchmarks/results_models.json]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_common

bench_common.set_offline_env()

import torch  # noqa: E402

from modality_conflict.dataset_builder.constants import CONDITIONS  # noqa: E402
from modality_conflict.mc_tasks.names import MAIN_TASK  # noqa: E402


@dataclass
class CallCounter:
    """Hooks on a Hugging Face model counting what a wrapper asks of it, and the time spent inside."""

    invocations: int = 0
    forwards: int = 0
    prefills: int = 0
    forward_seconds: float = 0.0
    forward_seconds_outside_generate: float = 0.0
    generate_seconds: float = 0.0
    _inside_generate: int = 0
    _started: float = 0.0
    _handles: list[Any] = field(default_factory=list)

    def attach(self, model: Any) -> CallCounter:
        """Register the hooks on ``model`` and route its ``generate`` through the counter."""
        self._handles = [
            model.register_forward_pre_hook(self._before, with_kwargs=True),
            model.register_forward_hook(self._after),
        ]
        original = model.generate

        def generate(*args: Any, **kwargs: Any) -> Any:
            self.invocations += 1
            self._inside_generate += 1
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.generate_seconds += time.perf_counter() - started
                self._inside_generate -= 1

        # An instance attribute shadows the class method, so wrappers calling model.generate hit it.
        model.generate = generate
        return self

    def _before(self, _module: Any, _args: Any, kwargs: dict[str, Any]) -> None:
        self.forwards += 1
        if not self._inside_generate:
            self.invocations += 1
        # transformers 5 passes the key/value cache as ``cache`` (earlier versions: ``past_key_values``).
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        if cache is None or not hasattr(cache, "get_seq_length") or cache.get_seq_length() == 0:
            self.prefills += 1
        self._started = time.perf_counter()

    def _after(self, _module: Any, _args: Any, _output: Any) -> None:
        elapsed = time.perf_counter() - self._started
        self.forward_seconds += elapsed
        if not self._inside_generate:  # e.g. a shared image prefix, run before generate continues it
            self.forward_seconds_outside_generate += elapsed

    def snapshot(self) -> dict[str, float]:
        """Current totals."""
        return {
            "invocations": self.invocations,
            "forwards": self.forwards,
            "prefills": self.prefills,
            "forward_seconds": self.forward_seconds,
            "forward_seconds_outside_generate": self.forward_seconds_outside_generate,
            "generate_seconds": self.generate_seconds,
        }


class _Transformers5ProcessorShim:
    """Lets lmms-eval 0.7.3's ``llava_hf.loglikelihood`` run under transformers 5 without changing its work.

    It calls the processor on the context alone (image placeholders but no image) only to count the
    context's tokens, and passes ``images=[]`` for text-only prompts; transformers 5 raises on both.
    Here the first is tokenised by the tokenizer (what the processor did before transformers 5 validated
    its inputs) and the empty list becomes ``None``.
    """

    def __init__(self, processor: Any, image_token: str = "<image>") -> None:
        self._processor = processor
        self._image_token = image_token

    def __getattr__(self, name: str) -> Any:
        return getattr(self._processor, name)

    def __call__(self, *args: Any, images: Any = None, text: Any = None, **kwargs: Any) -> Any:
        if images is not None and len(images) == 0:
            images = None
        texts = [text] if isinstance(text, str) else list(text or [])
        if images is None and any(self._image_token in t for t in texts):
            return self._processor.tokenizer(text, **kwargs)
        return self._processor(*args, images=images, text=text, **kwargs)


def _make_baseline_classes() -> tuple[type, type]:
    from modality_conflict.metrics.entropy import full_vocab_entropy
    from modality_conflict.models.chat import AnswerTokens
    from modality_conflict.models.envelope import encode_envelope
    from modality_conflict.models.generation import answer_logprobs, decode_answer, eos_token_ids
    from modality_conflict.models.hf_model import ModalityConflictHF
    from modality_conflict.models.logit_lens import lens_records

    def bare_generate(wrapper: Any, inputs: Any, settings: dict[str, Any], until: list[str]) -> list[str]:
        """A plain ``generate`` call and its decoded answers (no logits kept, no hooks)."""
        eos = eos_token_ids(wrapper._model, wrapper._tokenizer)
        sequences = wrapper._model.generate(
            **inputs,
            **settings,
            pad_token_id=wrapper._tokenizer.pad_token_id,
            eos_token_id=sorted(eos) or None,
        )
        new_tokens = sequences[:, inputs["input_ids"].shape[1] :]
        return [decode_answer(wrapper._tokenizer, row, until, eos) for row in new_tokens]

    class GenerateThenProbe(ModalityConflictHF):
        """The wrapper's prompts answered in two passes: ``generate``, then a probing forward pass."""

        @torch.no_grad()
        def _generate_batch(
            self,
            inputs: Any,
            settings: dict[str, Any],
            until: list[str],
            answers: AnswerTokens | None,
            **_: Any,
        ) -> list[str]:
            texts = bare_generate(self, inputs, settings, until)
            probe = self._model(**inputs, output_hidden_states=True)
            last = probe.logits[:, -1].float()
            entropies = full_vocab_entropy(last.double().cpu().numpy()).values
            logprobs = answer_logprobs(torch.log_softmax(last, dim=-1), answers)
            states = [h[:, -1] for h in probe.hidden_states[1:]]
            lens = lens_records(
                self.lens_modules,
                states,
                answers.lower,
                lambda token: self._tokenizer.decode([token]),
                extra_answer_token_ids={"capitalized": answers.capitalized},
            )
            return [
                encode_envelope(
                    text=text,
                    entropy=float(entropies[row]) if math.isfinite(float(entropies[row])) else None,
                    estimator="full_vocab",
                    answer_logprobs=logprobs[row],
                    lens=lens[row],
                )
                for row, text in enumerate(texts)
            ]

    class GenerateOnly(ModalityConflictHF):
        """The wrapper's prompts answered by a bare ``generate``: text only, no entropy, no lens."""

        @torch.no_grad()
        def _generate_batch(
            self,
            inputs: Any,
            settings: dict[str, Any],
            until: list[str],
            answers: AnswerTokens | None,
            **_: Any,
        ) -> list[str]:
            return bare_generate(self, inputs, settings, until)

    return GenerateThenProbe, GenerateOnly


@dataclass
class Method:
    """One way of answering: the lmms-eval model, its request type and task, and its counters."""

    name: str
    description: str
    lm: Any
    request_type: str
    task_name: str
    counter: CallCounter
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    responses: dict[int, list[Any]] = field(default_factory=dict)

    def run(self, requests: list[Any], *, record: bool = True) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        out = getattr(self.lm, self.request_type)(requests)
        if record:
            self.wall_seconds += time.perf_counter() - wall
            self.cpu_seconds += time.process_time() - cpu
            for request, response in zip(requests, out, strict=True):
                self.responses.setdefault(request.doc_id, []).append(response)


def _compare_envelopes(a: dict[int, list[Any]], b: dict[int, list[Any]]) -> dict[str, Any]:
    """How far the two-pass method's envelopes are from the wrapper's (same answers, same entropies)."""
    from modality_conflict.models.envelope import decode_envelope

    same_text, entropy_diff, score_diff, n = 0, 0.0, 0.0, 0
    for doc_id, responses in a.items():
        left, right = decode_envelope(responses[0]), decode_envelope(b[doc_id][0])
        if left is None or right is None:
            continue
        n += 1
        same_text += left["text"] == right["text"]
        if left["entropy"] is not None and right["entropy"] is not None:
            entropy_diff = max(entropy_diff, abs(left["entropy"] - right["entropy"]))
        for color, value in left["answer_logprobs"].items():
            score_diff = max(score_diff, abs(value - right["answer_logprobs"][color]))
    return {
        "prompts_compared": n,
        "same_answer_text_share": same_text / n if n else None,
        "max_abs_entropy_difference": entropy_diff,
        "max_abs_answer_logprob_difference": score_diff,
    }


def run(groups: int, threads: int, work: Path) -> dict[str, Any]:
    """Run the methods over the preset and return the figures."""
    torch.set_num_threads(threads)
    checkpoint = bench_common.ensure_tiny_llava(work / "tiny_llava")
    data_dir = bench_common.ensure_dataset(work / f"data_g{groups}", groups)
    tasks = bench_common.lmms_eval_tasks(data_dir, [MAIN_TASK, "modality_conflict_loglik"])
    generation_task = tasks[MAIN_TASK]
    loglik_task = tasks["modality_conflict_loglik"]
    dataset = generation_task.dataset["test"]
    conditions = [CONDITIONS[c] if isinstance(c, int) else c for c in dataset["condition"]]
    group_of_doc = list(dataset["group_id"])
    n_rows = len(conditions)
    n_items = sum(c == "conflict" for c in conditions)

    from lmms_eval.models.simple.llava_hf import LlavaHf

    from modality_conflict.models.hf_model import ModalityConflictHF

    # Whole prompts, answered to full length, for every method: this benchmark compares ways of getting
    # the numbers of one prompt (bench_sharing.py measures the image-prefix sharing and the early stop).
    load = {"pretrained": str(checkpoint), "device": "cpu", "device_map": "cpu"}
    whole = {**load, "share_images": False, "early_stop": False}
    probe_class, bare_class = _make_baseline_classes()
    wrapper = ModalityConflictHF(**whole)
    probe = probe_class(**whole)
    bare = bare_class(**whole)
    llava_hf = LlavaHf(**load)
    llava_hf._image_processor = _Transformers5ProcessorShim(llava_hf._image_processor)
    for lm in (wrapper, probe, bare, llava_hf):
        lm.task_dict.update({name: task.dataset for name, task in tasks.items()})

    methods = [
        Method(
            "modality_conflict_hf",
            "project wrapper: one generate per prompt (answer, full entropy, logit lens)",
            wrapper,
            "generate_until",
            MAIN_TASK,
            CallCounter().attach(wrapper.model),
        ),
        Method(
            "llava_hf_loglikelihood",
            "lmms-eval llava_hf loglikelihood: one forward per candidate colour",
            llava_hf,
            "loglikelihood",
            "modality_conflict_loglik",
            CallCounter().attach(llava_hf.model),
        ),
        Method(
            "generate_then_probe",
            "generate, then a second forward with output_hidden_states for entropy and lens",
            probe,
            "generate_until",
            MAIN_TASK,
            CallCounter().attach(probe.model),
        ),
        Method(
            "generate_only",
            "reference: the same prompts, a bare generate (answer text only: no entropy, no lens)",
            bare,
            "generate_until",
            MAIN_TASK,
            CallCounter().attach(bare.model),
        ),
    ]
    instances = {
        MAIN_TASK: generation_task.instances,
        "modality_conflict_loglik": loglik_task.instances,
    }
    by_group: dict[str, dict[int, list[Any]]] = {}
    for task_name, task_instances in instances.items():
        by_group[task_name] = {}
        for instance in task_instances:
            by_group[task_name].setdefault(group_of_doc[instance.doc_id], []).append(instance)

    # Warm-up on a few requests (lazy initialisation inside torch and transformers), then reset.
    for method in methods:
        method.run(by_group[method.task_name][0][:6], record=False)
        method.counter.invocations = method.counter.forwards = method.counter.prefills = 0
        method.counter.forward_seconds = method.counter.generate_seconds = 0.0

    own_counts = (wrapper.n_model_calls, wrapper.n_forward_passes)
    started = time.perf_counter()
    for step, group in enumerate(sorted(by_group[MAIN_TASK])):
        shift = step % len(methods)
        for method in methods[shift:] + methods[:shift]:
            method.run(by_group[method.task_name][group])
    total_seconds = time.perf_counter() - started

    results: dict[str, Any] = {}
    for method in methods:
        counts = method.counter.snapshot()
        prompts = len(method.responses)
        per_prompt = counts["invocations"] / prompts
        results[method.name] = {
            "description": method.description,
            "lmms_eval_task": method.task_name,
            "request_type": method.request_type,
            "prompts": prompts,
            "requests": sum(len(r) for r in method.responses.values()),
            **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in counts.items()},
            "wall_seconds": round(method.wall_seconds, 3),
            "cpu_seconds": round(method.cpu_seconds, 3),
            "invocations_per_prompt": round(per_prompt, 3),
            "prefills_per_prompt": round(counts["prefills"] / prompts, 3),
            "forwards_per_prompt": round(counts["forwards"] / prompts, 3),
            "invocations_per_triplet": round(3 * per_prompt, 3),
            "invocations_per_conflict_item": round(counts["invocations"] / n_items, 3),
            "ms_per_prompt": round(1000 * method.wall_seconds / prompts, 2),
            "forward_share_of_wall": round(counts["forward_seconds"] / method.wall_seconds, 3),
        }
    base = results["modality_conflict_hf"]

    def ratio(name: str, key: str) -> float:
        return round(results[name][key] / base[key], 2)

    return {
        "benchmark": "model_calls",
        "checkpoint": "tiny LLaVA (random weights, tiny_zoo.build('llava'), seed 0)",
        "groups": groups,
        "rows": n_rows,
        "rows_by_condition": dict(Counter(conditions)),
        "conflict_items": n_items,
        "torch_threads": threads,
        "max_new_tokens": 8,
        "measured_seconds": round(total_seconds, 2),
        "methods": results,
        "ratios_vs_wrapper": {
            name: {
                "invocations": ratio(name, "invocations"),
                "prefill_forwards": ratio(name, "prefills"),
                "forward_passes": ratio(name, "forwards"),
                "wall_time": ratio(name, "wall_seconds"),
                "cpu_time": ratio(name, "cpu_seconds"),
            }
            for name in results
            if name != "modality_conflict_hf"
        },
        "two_pass_consistency": _compare_envelopes(methods[0].responses, methods[2].responses),
        # The wrapper's own counters (its n_model_calls / n_forward_passes attributes) over the same run.
        "wrapper_own_counters": {
            "n_model_calls": wrapper.n_model_calls - own_counts[0],
            "n_forward_passes": wrapper.n_forward_passes - own_counts[1],
        },
    }


def format_summary(report: dict[str, Any]) -> str:
    """A short plain-text table of the figures."""
    lines = [
        f"{report['rows']} prompts ({report['conflict_items']} conflict items), tiny LLaVA, "
        f"{report['torch_threads']} torch thread(s)",
        f"{'method':24} {'calls/prompt':>12} {'prefill/prompt':>14} {'fwd/prompt':>10} "
        f"{'calls/triplet':>13} {'calls/item':>10} {'ms/prompt':>9}",
    ]
    for name, m in report["methods"].items():
        lines.append(
            f"{name:24} {m['invocations_per_prompt']:12.2f} {m['prefills_per_prompt']:14.2f} "
            f"{m['forwards_per_prompt']:10.2f} {m['invocations_per_triplet']:13.2f} "
            f"{m['invocations_per_conflict_item']:10.2f} {m['ms_per_prompt']:9.2f}"
        )
    for name, r in report["ratios_vs_wrapper"].items():
        lines.append(
            f"{name} / wrapper: {r['invocations']:.2f}x calls, {r['prefill_forwards']:.2f}x prefills, "
            f"{r['wall_time']:.2f}x wall time, {r['cpu_time']:.2f}x CPU time"
        )
    c = report["two_pass_consistency"]
    lines.append(
        f"two-pass vs one-pass: same answer text on {c['same_answer_text_share']:.3f} of prompts, "
        f"max entropy difference {c['max_abs_entropy_difference']:.2e} nats"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=12, help="dataset groups (small preset: 12)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--work", type=Path, help="folder for the checkpoint and the dataset (default: temp)")
    parser.add_argument(
        "--out", type=Path, default=bench_common.HERE / "results_models.json", help="JSON report path"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mc-bench-models-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        report = run(args.groups, args.threads, work)
    report["machine"] = bench_common.machine_info()
    bench_common.write_report(report, args.out)
    print(format_summary(report))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
