"""Per-doc records and their aggregation, as the lmms-eval task hooks use them."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures_results import simulate_responses, synthetic_docs
from PIL import Image

from modality_conflict.dataset_builder.constants import COLORS, CONDITIONS
from modality_conflict.mc_tasks import records as task_records
from modality_conflict.mc_tasks import task_logic
from modality_conflict.models.envelope import encode_envelope


def _doc(condition: str, **overrides: Any) -> dict[str, Any]:
    doc = {
        "row_id": "g0001-v03-t1-none",
        "condition": CONDITIONS.index(condition),
        "control": 0,
        "group_id": 1,
        "item_id": "g0001-v03-t1-none" if condition == "conflict" else "",
        "vision_key": "" if condition == "text_only" else "g0001-v03-none",
        "text_key": "" if condition == "vision_only" else "g0001-t1-none",
        "visual_tier": -1 if condition == "text_only" else 3,
        "text_tier": -1 if condition == "vision_only" else 1,
        "shape": "circle",
        "question": "What color is the circle?",
        "text": "" if condition == "vision_only" else "The circle is blue.",
        "vision_answer": COLORS.index("red"),
        "text_answer": COLORS.index("blue"),
        "answer_choices": list(COLORS),
        "image": None if condition == "text_only" else Image.new("RGB", (8, 8), "red"),
    }
    doc.update(overrides)
    return doc


def test_prompts_follow_the_paper_and_text_only_has_no_image() -> None:
    assert task_logic.doc_to_text(_doc("conflict")) == (
        "The circle is blue. What color is the circle? Please use one word to answer this question."
    )
    assert task_logic.doc_to_text(_doc("vision_only")) == (
        "What color is the circle? Please use one word to answer this question."
    )
    assert task_logic.doc_to_visual(_doc("text_only")) == []
    (image,) = task_logic.doc_to_visual(_doc("conflict"))
    assert image.mode == "RGB"
    wrapped = task_logic.doc_to_text(_doc("vision_only"), {"pre_prompt": "<", "post_prompt": ">"})
    assert wrapped.startswith("<What") and wrapped.endswith("question.>")


def test_envelope_record_carries_answer_entropy_and_estimator() -> None:
    response = encode_envelope(
        text=" Blue.",
        entropy=0.25,
        estimator="full_vocab",
        answer_logprobs={c: -1.0 - i for i, c in enumerate(COLORS)},
    )
    record = task_records.make_record(_doc("conflict"), [response])
    assert record["answer"] == "blue"
    assert record["entropy"] == 0.25 and record["entropy_estimator"] == "full_vocab"
    assert record["answer_scores"] == [-1.0, -2.0, -3.0, -4.0, -5.0, -6.0]
    assert record["vision_answer"] == "red" and record["text_answer"] == "blue"
    assert record["condition"] == "conflict" and record["control"] == "none"


def test_plain_generation_has_no_entropy() -> None:
    record = task_records.make_record(_doc("text_only"), ["It is Violet"])
    assert record["answer"] == "purple"
    assert record["entropy"] is None and record["entropy_estimator"] == "none"


def test_loglik_strings_are_mean_losses_and_argmin_wins() -> None:
    # lmms-eval 0.7.x hands multiple_choice responses over as strings of (mean loss, is_greedy).
    losses = [2.0, 0.5, 3.0, 1.0, 2.5, 4.0]
    record = task_records.make_record(
        _doc("vision_only"), [f"({loss}, False)" for loss in losses], mode="loglik"
    )
    assert record["answer"] == "yellow"
    assert record["entropy_estimator"] == "answer_set_length_normalised"
    p = np.exp(-np.array(losses))
    p /= p.sum()
    assert record["entropy"] == pytest.approx(float(-(p * np.log(p)).sum()))


def test_loglik_log_probabilities_give_the_exact_answer_set_entropy() -> None:
    log_probs = [math.log(0.5), math.log(0.25), math.log(0.125), math.log(0.0625), -9.0, -9.0]
    record = task_records.make_record(_doc("text_only"), [(lp, False) for lp in log_probs], mode="loglik")
    assert record["answer"] == "red" and record["entropy_estimator"] == "answer_set"
    p = np.exp(np.array(log_probs))
    p /= p.sum()
    assert record["entropy"] == pytest.approx(float(-(p * np.log(p)).sum()))


def test_loglik_rejects_mixed_signs_and_wrong_counts() -> None:
    with pytest.raises(ValueError, match="mix"):
        task_records.make_record(_doc("conflict"), [(-1.0, 0), (2.0, 0)] + [(-1.0, 0)] * 4, mode="loglik")
    with pytest.raises(ValueError, match="5 loglikelihoods"):
        task_records.make_record(_doc("conflict"), [(-1.0, 0)] * 5, mode="loglik")
    with pytest.raises(ValueError, match="cannot read"):
        task_records.make_record(_doc("conflict"), ["(nan"] * 6, mode="loglik")


def test_sampled_answers_give_mode_and_miller_madow_entropy() -> None:
    record = task_records.make_record(_doc("conflict"), ["Red", "red.", "Blue", "RED"], mode="sampled")
    assert record["answer"] == "red" and record["entropy_estimator"] == "sampled"
    plug_in = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert record["entropy"] == pytest.approx(plug_in + (2 - 1) / (2 * 4))


def test_sampled_answers_arrive_as_one_list_of_plain_text_or_envelopes() -> None:
    (kept,) = task_logic.KeepAllResponses().apply([["Red", "blue", "red"]], [_doc("conflict")])
    assert kept == ["Red", "blue", "red"]
    plain = task_records.make_record(_doc("conflict"), [kept], mode="sampled")
    envelopes = [encode_envelope(text=t, entropy=1.0, estimator="full_vocab") for t in kept]
    wrapped = task_records.make_record(_doc("conflict"), [envelopes], mode="sampled")
    assert plain["answer"] == wrapped["answer"] == "red"
    assert plain["entropy"] == wrapped["entropy"] > 0 and wrapped["raw_response"] == "Red"


def test_one_sampled_answer_is_an_error_not_an_entropy_of_zero() -> None:
    with pytest.raises(ValueError, match="received 1 response.*needs all K repeats"):
        task_records.make_record(_doc("conflict"), ["red"], mode="sampled")


def test_identical_samples_everywhere_are_flagged() -> None:
    docs = synthetic_docs(8, with_controls=False)
    responses = simulate_responses(docs, balance_point=0.0, seed=4)
    records = [
        task_records.make_record(doc, [[str(response)] * 3], mode="sampled")
        for doc, response in zip(docs, responses, strict=True)
    ]
    assert "do_sample" in task_records.summarize_records(records)["warnings"][0]
    varied = [records[0] | {"entropy": 0.5}, *records[1:]]
    assert "warnings" not in task_records.summarize_records(varied)


def test_report_is_independent_of_record_order() -> None:
    docs = synthetic_docs(16)
    responses = simulate_responses(docs, balance_point=0.2, seed=3)
    records = [task_records.make_record(doc, [resp]) for doc, resp in zip(docs, responses, strict=True)]
    shuffled = records[:]
    random.Random(7).shuffle(shuffled)
    first = task_records.summarize_records(records)
    assert first["status"] == "ok" and first["n_conflicts"] > 0
    assert first == task_records.summarize_records(shuffled)
    assert isinstance(first["balance_point"], float) or first["balance_point_reason"]


def test_every_aggregation_reads_the_same_cached_summary() -> None:
    docs = synthetic_docs(8, with_controls=False)
    responses = simulate_responses(docs, balance_point=0.0, seed=1)
    records = [task_records.make_record(doc, [resp]) for doc, resp in zip(docs, responses, strict=True)]
    report = task_records.cached_summary(list(records))
    assert task_logic.aggregate_tfr(list(reversed(records))) == report["tfr"]
    assert task_logic.aggregate_balance_point_ci_low(records) == report["balance_point_ci_low"]
    assert report["entropy_estimator"] == "full_vocab"
    assert not hasattr(task_logic, "aggregate_report") and not hasattr(
        task_logic, "aggregate_entropy_estimator"
    )


def test_incomplete_items_are_counted_and_an_empty_join_is_flagged() -> None:
    docs = synthetic_docs(6, with_controls=False)
    responses = simulate_responses(docs, balance_point=0.0, seed=2)
    records = [task_records.make_record(doc, [resp]) for doc, resp in zip(docs, responses, strict=True)]
    dropped_key = next(r["vision_key"] for r in records if r["condition"] == "vision_only")
    partial = [r for r in records if not (r["condition"] == "vision_only" and r["vision_key"] == dropped_key)]
    report = task_records.summarize_records(partial)
    lost = sum(1 for r in records if r["condition"] == "conflict" and r["vision_key"] == dropped_key)
    assert report["n_incomplete_conflicts"] == lost > 0
    only_conflicts = [r for r in records if r["condition"] == "conflict"]
    undefined = task_records.summarize_records(only_conflicts)
    assert (
        undefined["status"] == "undefined"
        and "no conflict item has all three conditions" in undefined["reason"]
    )


def test_mixed_estimators_are_refused() -> None:
    docs = synthetic_docs(4, with_controls=False)
    responses = simulate_responses(docs, balance_point=0.0, seed=2)
    records = [task_records.make_record(doc, [resp]) for doc, resp in zip(docs, responses, strict=True)]
    records[0] = {**records[0], "entropy_estimator": "sampled"}
    with pytest.raises(ValueError, match="mix entropy estimators"):
        task_records.summarize_records(records)


def test_bad_labels_name_the_field() -> None:
    with pytest.raises(ValueError, match="'vision_answer'"):
        task_records.make_record(_doc("conflict", vision_answer=17), ["red"])
    with pytest.raises(ValueError, match="'condition'"):
        task_records.make_record({**_doc("conflict"), "condition": "both"}, ["red"])


def test_pin_dataset_rewrites_only_the_pin(tmp_path: Path) -> None:
    from modality_conflict.cli.main import main as cli_main
    from modality_conflict.dataset_builder import canonical
    from modality_conflict.dataset_builder.canonical import CANONICAL, write_pin
    from modality_conflict.mc_tasks.task_config import TASKS_DIR

    tasks_before = {path.name: path.read_bytes() for path in TASKS_DIR.iterdir() if path.is_file()}
    pins = tmp_path / "pins.json"
    pins.write_bytes(canonical.PINS_PATH.read_bytes())
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert write_pin(repo_id="someone/color-conflict", revision=sha, pins=pins) == [pins]
    color = canonical.read_pins(pins)["color"]
    assert (color.repo_id, color.revision, color.fingerprint) == (
        "someone/color-conflict",
        sha,
        CANONICAL.fingerprint,
    )
    write_pin(
        repo_id="someone/attribute-conflict", revision=sha, fingerprint="ab" * 32, kind="attribute", pins=pins
    )
    after = canonical.read_pins(pins)
    assert after["attribute"].fingerprint == "ab" * 32 and after["color"] == color
    # The task files hold no copy of the pin: nothing in the task folder was rewritten.
    assert {path.name: path.read_bytes() for path in TASKS_DIR.iterdir() if path.is_file()} == tasks_before
    before = pins.read_bytes()
    with pytest.raises(ValueError, match="not a 40-character commit sha"):
        write_pin(repo_id="someone/color-conflict", revision="main", pins=pins)
    with pytest.raises(ValueError, match="USER/NAME"):
        write_pin(repo_id="no-slash", revision=sha, pins=pins)
    with pytest.raises(ValueError, match="not a 64-character sha256"):
        write_pin(repo_id="someone/color-conflict", revision=sha, fingerprint="abc", pins=pins)
    assert pins.read_bytes() == before
    # The command refuses a bad value in one line and changes nothing either.
    assert cli_main(["pin-dataset", "someone/color-conflict", "main"]) != 0
    assert canonical.read_pins() == canonical.CANONICAL_BY_KIND


def test_local_task_copy_points_at_the_data_and_keeps_the_pin(tmp_path: Path) -> None:
    from lmms_eval.utils import load_yaml_config

    from modality_conflict.mc_tasks.task_config import write_local_task_dir

    data = tmp_path / "data"
    with pytest.raises(FileNotFoundError, match="modality-conflict build"):
        write_local_task_dir(data, tmp_path / "tasks")
    (data / "data").mkdir(parents=True)
    (data / "data" / "test-00000-of-00001.parquet").write_bytes(b"")
    (data / "manifest.json").write_text('{"dataset": "modality-conflict-colour"}')
    out = write_local_task_dir(data, tmp_path / "tasks")
    config = load_yaml_config(str(out / "modality_conflict_color.yaml"), mode="simple")
    assert config["dataset_path"] == str(data.resolve()) and "dataset_kwargs" not in config
    assert (
        "modality_conflict_dataset" in config["metadata"]
    )  # the copy is still recognised as one of the tasks
    assert write_local_task_dir(data, out) == out  # an earlier copy is replaced
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"not part of the task folder \(notes.txt\)"):
        write_local_task_dir(data, out)
    assert (out / "notes.txt").read_text() == "mine"


def _top_k(response: str, below: float, above: float) -> str:
    """A simulated envelope as a top-k endpoint gives it: the entropy with bounds ``below`` under it and
    ``above`` over it (shifts, not factors: dH does not change when every entropy is scaled)."""
    envelope = json.loads(response)
    entropy = envelope["entropy"]
    return encode_envelope(
        text=envelope["text"],
        entropy=entropy,
        estimator="top_k",
        answer_logprobs=envelope["answer_logprobs"],
        entropy_bounds=None if entropy is None else (max(entropy - below, 0.0), entropy + above),
        uncovered_mass=None if entropy is None else 0.25,
        usage={"prompt_tokens": 30, "completion_tokens": 2},
    )


def test_top_k_records_report_the_balance_point_at_both_bounds() -> None:
    docs = synthetic_docs(24, with_controls=False)
    responses = simulate_responses(docs, balance_point=0.1, seed=5)
    records = [
        task_records.make_record(d, [_top_k(r, 0.1, 0.4)]) for d, r in zip(docs, responses, strict=True)
    ]
    unimodal = [r for r in records if r["condition"] != "conflict"]
    assert all(r["entropy_bounds"][0] < r["entropy"] < r["entropy_bounds"][1] for r in unimodal)
    summary = task_records.summarize_records(records)
    assert summary["entropy_estimator"] == "top_k" and summary["uncovered_mass_max"] == 0.25
    assert summary["usage"] == {"prompt_tokens": 30 * len(docs), "completion_tokens": 2 * len(docs)}
    for side, index in (("lower", 0), ("upper", 1)):
        # The same records with every entropy moved to that bound, summarised as plain records.
        moved = [
            {k: v for k, v in r.items() if k not in ("entropy_bounds", "uncovered_mass")}
            | {"entropy": r["entropy"] if r["entropy"] is None else r["entropy_bounds"][index]}
            for r in records
        ]
        expected = task_records.summarize_records(moved)["balance_point"]
        assert expected is not None and summary[f"balance_point_at_entropy_{side}"] == pytest.approx(expected)
    assert summary["balance_point_at_entropy_lower"] != pytest.approx(
        summary["balance_point_at_entropy_upper"]
    )
    # Bounds equal to the entropy give the balance point itself at both.
    tight = task_records.summarize_records(
        [task_records.make_record(d, [_top_k(r, 0.0, 0.0)]) for d, r in zip(docs, responses, strict=True)]
    )
    assert tight["balance_point_at_entropy_lower"] == pytest.approx(tight["balance_point"])
    assert tight["balance_point_at_entropy_upper"] == pytest.approx(tight["balance_point"])


@pytest.mark.parametrize("bounds", [[2.0, 1.0], [1.0], ["a", 1.0]])
def test_bad_entropy_bounds_are_refused(bounds: list[Any]) -> None:
    response = json.dumps(
        {"mc_envelope": 1, "text": "red", "entropy": 1.0, "estimator": "top_k", "entropy_bounds": bounds}
    )
    with pytest.raises(ValueError, match="entropy_bounds"):
        task_records.make_record(_doc("vision_only"), [response])
