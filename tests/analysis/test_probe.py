"""``modality-conflict probe``: the per-layer logit lens on conflict items, from a model or from logs.

The tiny random checkpoints answer noise that is rarely a colour, so the probe would have almost nothing
to look at. The fixtures below scale up the LM-head rows of the colour tokens of a copy of each checkpoint:
every layer's top-1 then tends to be a colour, the answers are colours, and many items are conflicts.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fixtures_results
import numpy as np
import pytest
import torch
from fixtures_results import synthetic_docs, write_lmms_eval_run
from PIL import Image
from torch import nn

from modality_conflict.analysis.probe import (
    FIRST_TOKEN_NOTE,
    Balance,
    ProbeError,
    ProbeOptions,
    ProbeResult,
    answer_rows,
    balance_from_summary,
    build_items,
    heatmap_grid,
    load_rows,
    oscillations_by_control,
    probe_from_model,
    probe_item,
    summary_lines,
    write_outputs,
)
from modality_conflict.analysis.results import TaskSummary
from modality_conflict.cli.main import main
from modality_conflict.dataset_builder.constants import COLORS, CONDITIONS
from modality_conflict.mc_tasks import records as task_records
from modality_conflict.mc_tasks import task_logic
from modality_conflict.metrics.probing import count_oscillations
from modality_conflict.models import loading
from modality_conflict.models.envelope import encode_envelope
from modality_conflict.models.hf_model import ModalityConflictHF
from modality_conflict.models.logit_lens import find_lens_modules

LIMIT_GROUPS = 1
N_CONFLICTS_PER_GROUP = 42 + 5 + 5  # main set + text-irrelevant + image-irrelevant controls
# Hand-made lens records: lowercase ids 10.., capitalised ids 20.., anything else is "other".
LOWER = {color: 10 + i for i, color in enumerate(COLORS)}
UPPER = {color: 20 + i for i, color in enumerate(COLORS)}


# --- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from modality_conflict.dataset_builder.builder import build_dataset

    out = tmp_path_factory.mktemp("probe_data") / "color-conflict"
    build_dataset(out, groups=2, seed=0, workers=1)
    return out


def _colour_biased_copy(source: Path, out: Path, dataset_dir: Path) -> Path:
    """A copy of a tiny checkpoint whose colour tokens dominate the LM head (see the module docstring).

    The answer-position states of a random model share one large common direction, and what differs
    between prompts is small: each colour row is set along one of the main directions in which the
    dataset's prompts differ (principal components of the centred states), so the colour each prompt
    picks depends on the prompt.
    """
    shutil.copytree(source, out)
    wrapper = ModalityConflictHF(pretrained=str(out), device="cpu", lens=False, batch_size=16)
    states: list[torch.Tensor] = []

    def keep(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        states.append(output[:, -1, :].detach())

    handle = find_lens_modules(wrapper.model).final_norm.register_forward_hook(keep)
    rows = load_rows(dataset_dir, limit_groups=LIMIT_GROUPS)
    answer_rows(wrapper, rows.select(range(0, len(rows), 3)), max_new_tokens=1)
    handle.remove()
    stacked = torch.cat(states).float()
    centred = stacked - stacked.mean(dim=0)
    components = torch.linalg.svd(centred, full_matrices=False).Vh  # rows: directions, largest first
    mean = stacked.mean(dim=0) / stacked.mean(dim=0).norm()
    tokens = wrapper.answer_tokens(COLORS)
    with torch.no_grad():
        weight = wrapper.model.get_output_embeddings().weight
        for index, color in enumerate(COLORS):
            # Lower-case and capitalised forms of a colour share its direction; +/- pairs split a component.
            direction = components[index // 2] * (1.0 if index % 2 == 0 else -1.0)
            direction = direction - (direction @ mean) * mean  # no colour favoured by the common part
            scale = 30.0 / float((centred @ direction).abs().mean().clamp_min(1e-6))
            for token in {tokens.lower[color], tokens.capitalized[color]}:
                weight[token] = (scale * direction).to(weight.dtype)
    wrapper.model.save_pretrained(out)
    return out


@pytest.fixture(scope="module", params=["llava", "qwen2_vl"])
def biased_dir(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, dataset_dir: Path
) -> Path:
    source = request.getfixturevalue(f"tiny_{request.param}_dir")
    return _colour_biased_copy(source, tmp_path_factory.mktemp("biased") / request.param, dataset_dir)


@pytest.fixture(scope="module")
def probed(biased_dir: Path, dataset_dir: Path) -> ProbeResult:
    """The probe of one group of the dataset, answered by the colour-biased checkpoint (one-token answers)."""
    return probe_from_model(
        biased_dir,
        dataset_dir,
        limit_groups=LIMIT_GROUPS,
        options=ProbeOptions(
            max_new_tokens=1, n_resamples=200, wrapper_kwargs={"device": "cpu", "batch_size": 8}
        ),
    )


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


# --- from a model -----------------------------------------------------------------------------------------


def test_probe_from_model_shapes_and_outputs(
    probed: ProbeResult, biased_dir: Path, dataset_dir: Path, tmp_path: Path
) -> None:
    from transformers import AutoConfig

    n_layers = AutoConfig.from_pretrained(biased_dir).get_text_config().num_hidden_layers
    assert probed.n_layers == n_layers
    assert sum(probed.skipped.values()) + len(probed.items) == N_CONFLICTS_PER_GROUP * LIMIT_GROUPS
    assert len(probed.items) >= 10, probed.skipped
    assert {item["control"] for item in probed.items} >= {"none"}
    for item in probed.items:
        assert item["yv"] in COLORS and item["yt"] in COLORS and item["yv"] != item["yt"]
        assert len(item["top1_ids"]) == len(item["top1_labels"]) == len(item["logit_diff"]) == n_layers
        assert all(value is not None and math.isfinite(value) for value in item["logit_diff"])
        for token, label in zip(item["top1_ids"], item["top1_labels"], strict=True):
            vision, text = token in item["yv_token_ids"], token in item["yt_token_ids"]
            assert label == ("vision" if vision else "text" if text else "other")
        assert item["oscillations"] == count_oscillations(item["top1_labels"])
        assert -2.0 <= item["dh"] <= 2.0

    # One generate call per batch gave the answers, the entropies and the lens: with one-token answers
    # every forward pass of the model is a generate call, so the lens cost no second pass.
    assert probed.provenance["generate_calls"] >= 2
    assert probed.provenance["forward_passes"] == probed.provenance["generate_calls"]

    paths = write_outputs(probed, tmp_path / "probe")
    written = json.loads(paths["json"].read_text())
    assert written["note"] == FIRST_TOKEN_NOTE == written["aggregates"]["note"]
    assert written["n_layers"] == n_layers and written["n_items"] == len(probed.items)
    assert [i["item_id"] for i in written["items"]] == [i["item_id"] for i in probed.items]
    assert len(written["heatmap"]["mean"]) == n_layers
    assert len(written["heatmap"]["edges"]) == len(written["heatmap"]["mean"][0]) + 1
    pixels = _pixels(paths["heatmap"])
    assert pixels.shape[0] > 200 and pixels.shape[1] > 200
    assert float(pixels.std()) > 5.0 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20


def test_cli_from_model_on_a_third_architecture(
    tiny_idefics3_dir: Path, dataset_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "probe"
    code = main(
        ["probe", "--model", str(tiny_idefics3_dir), "--data", str(dataset_dir), "--limit-groups", "1"]
        + ["--device", "cpu", "--n-resamples", "50", "--out", str(out)]
    )
    assert code == 0, capsys.readouterr().err
    written = json.loads((out / "probe.json").read_text())
    assert written["provenance"]["model_class"] == "Idefics3ForConditionalGeneration"
    assert written["n_items"] + sum(written["skipped"].values()) == N_CONFLICTS_PER_GROUP
    assert all(len(item["top1_labels"]) == written["n_layers"] for item in written["items"])
    printed = capsys.readouterr().out
    assert "conflict items" in printed and FIRST_TOKEN_NOTE in printed and "probe.json" in printed


def _reference_logits(model: Any, processor: Any, row: dict[str, Any]) -> torch.Tensor:
    """The model's real next-token logits after the conflict prompt, built as the wrapper builds it."""
    images = task_logic.doc_to_visual(row)
    content: list[dict[str, Any]] = [{"type": "image"} for _ in images]
    content.append({"type": "text", "text": task_logic.doc_to_text(row)})
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )
    inputs = processor(text=[prompt], images=[images], return_tensors="pt")
    with torch.no_grad():
        return model(**inputs).logits[0, -1].double()


def test_last_layer_lens_is_the_models_output(
    probed: ProbeResult, biased_dir: Path, dataset_dir: Path
) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(biased_dir)
    model = AutoModelForImageTextToText.from_pretrained(biased_dir).eval()
    rows = load_rows(dataset_dir, row_ids={item["item_id"] for item in probed.items[:4]})
    by_id = {rows[i]["row_id"]: rows[i] for i in range(len(rows))}
    for item in probed.items[:4]:
        real = _reference_logits(model, processor, by_id[item["item_id"]])
        assert item["top1_ids"][-1] == int(real.argmax())
        expected = float(real[item["yt_token_ids"]].max() - real[item["yv_token_ids"]].max())
        assert item["logit_diff"][-1] == pytest.approx(expected, abs=1e-3)
        # The greedy answer is the last layer's top-1, so the conflict answer follows from the labels.
        if item["top1_labels"][-1] != "other":
            assert item["following"] == item["top1_labels"][-1]


# --- hand-made lens records -------------------------------------------------------------------------------


def _lens(top1: Sequence[int], logits: Sequence[Sequence[float | None]] | None = None) -> dict[str, Any]:
    n = len(top1)
    rows = [list(r) for r in logits] if logits is not None else [[0.0] * len(COLORS) for _ in range(n)]
    return {
        "n_layers": n,
        "top1_ids": list(top1),
        "top1_tokens": [f"t{t}" for t in top1],
        "answer_token_ids": dict(LOWER),
        "answer_logits": rows,
        "answer_token_ids_capitalized": dict(UPPER),
        "answer_logits_capitalized": [[0.0] * len(COLORS) for _ in range(n)],
    }


V, VC, T, TC, O1, O2 = LOWER["red"], UPPER["red"], LOWER["blue"], UPPER["blue"], LOWER["green"], 99


@pytest.mark.parametrize(
    ("top1", "labels", "expected"),
    [
        ([V, O1, T, T, V], ["vision", "other", "text", "text", "vision"], 2),
        ([O1, O2, O1], ["other"] * 3, 0),
        ([V, O2, V, V], ["vision", "other", "vision", "vision"], 0),
        ([V, O1, O2, T], ["vision", "other", "other", "text"], 1),
        ([VC, T, V, TC], ["vision", "text", "vision", "text"], 3),  # either case counts
        ([T, V, T, V, T, V], ["text", "vision"] * 3, 5),
        ([O2, O2, T], ["other", "other", "text"], 0),
    ],
)
def test_oscillations_of_hand_made_sequences(top1: list[int], labels: list[str], expected: int) -> None:
    item = probe_item(_lens(top1), "red", "blue")
    assert item["top1_labels"] == labels
    assert item["oscillations"] == expected
    assert item["yv_token_ids"] == [V, VC] and item["yt_token_ids"] == [T, TC]


def test_logit_difference_takes_each_answers_best_form() -> None:
    lens = _lens([V, T, O2])
    red, blue = COLORS.index("red"), COLORS.index("blue")
    lens["answer_logits"] = [[0.0] * 6 for _ in range(3)]
    lens["answer_logits"][0][blue], lens["answer_logits"][0][red] = 2.0, 0.5
    lens["answer_logits_capitalized"][1][red] = 3.0  # "Red" beats "red" at layer 1
    lens["answer_logits"][2][red] = None  # a non-finite logit leaves the layer undefined
    item = probe_item(lens, "red", "blue")
    assert item["logit_diff"] == [pytest.approx(1.5), pytest.approx(-3.0), None]


def test_probe_item_rejects_what_is_not_a_conflict() -> None:
    with pytest.raises(ProbeError, match="not a conflict"):
        probe_item(_lens([V]), "red", "red")
    with pytest.raises(ProbeError, match="not one of"):
        probe_item(_lens([V]), "red", "other")
    shared = _lens([V])
    shared["answer_token_ids_capitalized"]["blue"] = V
    with pytest.raises(ProbeError, match="share the first token"):
        probe_item(shared, "red", "blue")
    with pytest.raises(ProbeError, match="n_layers"):
        probe_item({"top1_ids": [1]}, "red", "blue")


def _synthetic_run(sequence: Sequence[int]) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Records of synthetic rows whose unimodal answers are the truth, and one lens per conflict row.

    The text-only row of group 0, tier 1 answers the image's colour, so its conflicts are no conflicts.
    """
    docs = synthetic_docs(2, with_controls=False)
    records, lenses = [], {}
    for doc in docs:
        condition = CONDITIONS[doc["condition"]]
        vision, text = COLORS[doc["vision_answer"]], COLORS[doc["text_answer"]]
        answer = {"vision_only": vision, "text_only": text, "conflict": text}[condition]
        if doc["text_key"] == "g0000-t1-none" and condition == "text_only":
            answer = vision
        envelope = encode_envelope(
            text=answer, entropy=0.5 + 0.1 * doc["visual_tier"], estimator="full_vocab"
        )
        records.append(task_records.make_record(doc, [envelope]))
        if condition == "conflict":
            ids = [LOWER[vision] if t == V else LOWER[text] if t == T else t for t in sequence]
            lenses[doc["row_id"]] = _lens(ids)
    return records, lenses


def test_items_of_a_run_go_through_the_same_per_item_path() -> None:
    records, lenses = _synthetic_run([V, O2, T, O2, V, T])
    del lenses["g0001-v13-t0-none"]
    items, skipped = build_items(records, lenses)
    n_conflicts = sum(r["condition"] == "conflict" for r in records)
    assert skipped == {"not_conflict": 6, "no_lens": 1}  # six visual tiers x the one agreeing text row
    assert len(items) + sum(skipped.values()) == n_conflicts
    assert all(
        item["top1_labels"] == ["vision", "other", "text", "other", "vision", "text"] for item in items
    )
    assert all(item["oscillations"] == 3 for item in items)
    assert all(item["following"] == "text" for item in items)


# --- aggregates and the balance point ---------------------------------------------------------------------


def _items(dh: Sequence[float], counts: Sequence[int], control: str = "none") -> list[dict[str, Any]]:
    return [
        {"item_id": f"i{k}", "control": control, "dh": d, "oscillations": c, "logit_diff": [float(c), -1.0]}
        for k, (d, c) in enumerate(zip(dh, counts, strict=True))
    ]


def test_region_means_and_intervals() -> None:
    main_items = _items([-0.3, 0.1, 0.45, 0.55, -1.5, 1.9], [2, 1, 3, 0, 1, 0])
    controls = _items([0.0, 0.2, -0.9], [0, 1, 0], control="text_irrelevant")
    result = oscillations_by_control(
        main_items + controls, Balance(0.1, "test", "given"), radius=0.5, n_resamples=300
    )
    main = result["by_control"]["none"]
    assert main["ambiguous"]["n_items"] == 4 and main["clear"]["n_items"] == 2
    assert main["ambiguous"]["mean_oscillations"] == pytest.approx(1.5)
    assert main["clear"]["mean_oscillations"] == pytest.approx(0.5)
    assert main["difference"]["ambiguous_minus_clear"] == pytest.approx(1.0)
    assert main["ambiguous"]["ci_low"] < 1.5 < main["ambiguous"]["ci_high"]
    assert main["ambiguous"]["bootstrap_low"] <= 1.5 <= main["ambiguous"]["bootstrap_high"]
    assert main["mean_oscillations"] == pytest.approx(7 / 6)
    irrelevant = result["by_control"]["text_irrelevant"]
    assert irrelevant["n_items"] == 3 and irrelevant["mean_oscillations"] == pytest.approx(1 / 3)
    assert irrelevant["ambiguous"]["n_items"] == 2 and irrelevant["clear"]["n_items"] == 1
    assert result["by_control"]["image_irrelevant"]["mean_oscillations"] is None
    assert result["radius"] == 0.5 and result["balance_point"] == 0.1
    json.dumps(result, allow_nan=False)

    narrow = oscillations_by_control(main_items, Balance(0.1, "test", "given"), radius=0.25, n_resamples=0)
    assert narrow["by_control"]["none"]["ambiguous"]["n_items"] == 1


def test_undefined_balance_point_leaves_the_regions_undefined() -> None:
    report = {
        "balance_point": None,
        "balance_point_status": "censored_below",
        "balance_point_reason": "the curve crosses 0.5 below the smallest dH",
        "balance_point_bound": -1.25,
    }
    balance = balance_from_summary(TaskSummary(report), "a report")
    assert balance.value is None
    assert "censored_below" in balance.reason and "-1.250" in balance.reason
    assert "--balance-point" in balance.reason
    result = oscillations_by_control(_items([0.0, 1.0], [1, 0]), balance)
    main = result["by_control"]["none"]
    assert "ambiguous" not in main and "clear" not in main
    assert main["regions_reason"] == balance.reason and main["mean_oscillations"] == 0.5
    assert result["balance_point"] is None and result["balance_point_reason"] == balance.reason
    ok = balance_from_summary(TaskSummary({"balance_point": -0.2, "balance_point_status": "ok"}), "a report")
    assert ok.value == -0.2 and ok.reason is None


def test_heatmap_grid_bins_main_items_by_dh() -> None:
    items = _items([-1.9, -1.8, 0.1, 2.0], [1, 3, 2, 5]) + _items([0.2], [9], control="text_irrelevant")
    grid = heatmap_grid(items, n_layers=2, bins=4)
    assert grid["edges"] == [-2.0, -1.0, 0.0, 1.0, 2.0]
    assert grid["counts"] == [2, 0, 1, 1]  # dH = 2 falls in the last, closed bin; controls are left out
    assert grid["mean"][0] == [pytest.approx(2.0), None, pytest.approx(2.0), pytest.approx(5.0)]
    assert grid["mean"][1] == [pytest.approx(-1.0), None, pytest.approx(-1.0), pytest.approx(-1.0)]


# --- from an lmms-eval results folder ---------------------------------------------------------------------


@pytest.fixture()
def logged_run(
    probed: ProbeResult, dataset_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """An lmms-eval output folder whose sample logs hold the wrapper's real envelopes of :func:`probed`."""
    rows = load_rows(dataset_dir, limit_groups=LIMIT_GROUPS).remove_columns("image").to_list()
    responses = [probed.envelopes[row["row_id"]] for row in rows]
    monkeypatch.setattr(fixtures_results, "simulate_responses", lambda docs, **_: responses)
    write_lmms_eval_run(tmp_path / "results", model_id="org/biased-tiny", docs=rows)
    return tmp_path / "results"


def _no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the results path loaded a model")

    monkeypatch.setattr(ModalityConflictHF, "__init__", refuse)


def test_results_folder_needs_no_model(
    logged_run: Path, probed: ProbeResult, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    _no_model(monkeypatch)
    code = main(["probe", "--results", str(logged_run), "--n-resamples", "200"])
    assert code == 0, capsys.readouterr().err
    out = logged_run / "probe"
    written = json.loads((out / "probe.json").read_text())
    assert (out / "heatmap.png").is_file()
    assert written["provenance"]["source"] == "results" and written["provenance"]["generate_calls"] == 0
    assert written["skipped"] == probed.skipped
    fields = ("item_id", "dh", "control", "top1_labels", "oscillations", "yv", "yt")
    assert [{k: i[k] for k in fields} for i in written["items"]] == [
        {k: i[k] for k in fields} for i in probed.items
    ]
    for logged, direct in zip(written["items"], probed.items, strict=True):
        assert logged["logit_diff"] == pytest.approx(direct["logit_diff"])
    # Both paths take the balance point from the same records (the run's summary, or summarize_records).
    assert written["aggregates"]["balance_point_status"] == probed.aggregates["balance_point_status"]
    assert written["aggregates"]["balance_point"] == probed.aggregates["balance_point"]
    assert "probed" in capsys.readouterr().out
    # --model is only a fallback for logs without lens data: these have it, so it is never loaded.
    args = ["probe", "--results", str(logged_run), "--model", "never/loaded", "--out", str(out / "again")]
    assert main(args) == 0
    assert json.loads((out / "again" / "probe.json").read_text())["items"] == written["items"]


def test_results_balance_point_is_used_and_named(
    logged_run: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_model(monkeypatch)
    report_json = next(logged_run.rglob("*_modality_conflict.json"))
    reports = json.loads(report_json.read_text())
    reports["reports"]["modality_conflict_color"].update(balance_point=1.25, balance_point_status="ok")
    report_json.write_text(json.dumps(reports))
    assert main(["probe", "--results", str(logged_run), "--out", str(tmp_path / "a"), "--radius", "0.3"]) == 0
    written = json.loads((tmp_path / "a" / "probe.json").read_text())
    aggregates = written["aggregates"]
    assert aggregates["balance_point"] == 1.25 and str(report_json) in aggregates["balance_point_source"]
    main_items = [i for i in written["items"] if i["control"] == "none"]
    near = [i["oscillations"] for i in main_items if abs(i["dh"] - 1.25) <= 0.3]
    assert aggregates["by_control"]["none"]["ambiguous"]["n_items"] == len(near)

    assert (
        main(["probe", "--results", str(logged_run), "--out", str(tmp_path / "b"), "--balance-point", "-1"])
        == 0
    )
    given = json.loads((tmp_path / "b" / "probe.json").read_text())["aggregates"]
    assert given["balance_point"] == -1.0 and given["balance_point_source"] == "--balance-point"


def test_malformed_lens_is_named_with_file_line_row_and_field(
    logged_run: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _no_model(monkeypatch)
    log = next(logged_run.rglob("*_samples_*.jsonl"))
    lines = log.read_text().splitlines()
    number, sample = next(
        (i + 1, json.loads(line))
        for i, line in enumerate(lines)
        if json.loads(line)["tfr"]["condition"] == "conflict"
    )
    envelope = json.loads(sample["filtered_resps"])
    envelope["lens"]["top1_ids"][1] = "seven"
    sample["filtered_resps"] = json.dumps(envelope)
    lines[number - 1] = json.dumps(sample)
    log.write_text("\n".join(lines) + "\n")
    assert main(["probe", "--results", str(logged_run), "--out", str(tmp_path / "p")]) == 2
    error = capsys.readouterr().err
    row_id = sample["tfr"]["row_id"]
    where = f"error: {log}:{number}: row {row_id}: "
    assert error.startswith(where + "the logit-lens record is malformed: field 'top1_ids[1]' is 'seven'"), (
        error
    )
    assert "not made with" not in error and "no logit-lens data" not in error
    assert not (tmp_path / "p").exists()


def test_results_without_lens_data(
    tmp_path: Path,
    tiny_llava_dir: Path,
    dataset_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    # The simulated run's envelopes carry no logit-lens record.
    docs = synthetic_docs(1)
    write_lmms_eval_run(tmp_path / "results", docs=docs)
    code = main(["probe", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "p")])
    assert code == 2
    error = capsys.readouterr().err
    assert error.startswith("error:") and "no logit-lens data" in error and "--model" in error

    # With --model the model answers the conflict rows for the lens only; the rest comes from the logs.
    args = ["probe", "--results", str(tmp_path / "results"), "--model", str(tiny_llava_dir)]
    args += ["--device", "cpu", "--max-new-tokens", "1"]
    assert main([*args, "--out", str(tmp_path / "p")]) == 2
    assert "--data" in capsys.readouterr().err
    assert main([*args, "--data", str(dataset_dir), "--out", str(tmp_path / "p")]) == 0
    printed = capsys.readouterr().out
    assert "carry no logit-lens data" in printed and "differs from the logged one" in printed
    written = json.loads((tmp_path / "p" / "probe.json").read_text())
    n_conflicts = sum(CONDITIONS[d["condition"]] == "conflict" for d in docs)
    assert written["provenance"]["lens_from_model"] == n_conflicts
    assert written["provenance"]["generate_calls"] >= 1
    assert written["n_items"] + sum(written["skipped"].values()) == n_conflicts
    assert written["skipped"].get("no_lens", 0) == 0


@pytest.mark.slow
def test_real_lmms_eval_logs(
    tiny_lmms_eval_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_model(monkeypatch)
    # The run holds the group's two tasks: probe names the one to read.
    command = ["probe", "--results", str(tiny_lmms_eval_run), "--task", "modality_conflict_color"]
    assert main([*command, "--out", str(tmp_path)]) == 0
    written = json.loads((tmp_path / "probe.json").read_text())
    provenance = written["provenance"]
    assert provenance["lens_from_logs"] > 0 and provenance["generate_calls"] == 0
    assert written["skipped"].get("no_lens", 0) == 0
    assert written["n_items"] + sum(written["skipped"].values()) == provenance["lens_from_logs"]


# --- errors -----------------------------------------------------------------------------------------------


class NoHeadModel(nn.Module):
    """A module with neither an LM head nor a final norm."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 4)


class HeadOnlyModel(NoHeadModel):
    """An LM head, but no decoder with a final norm."""

    def get_output_embeddings(self) -> nn.Module:
        return self.proj


@pytest.mark.parametrize(("cls", "words"), [(NoHeadModel, "LM head"), (HeadOnlyModel, "final norm")])
def test_unsupported_architecture_names_the_class(
    cls: type[nn.Module],
    words: str,
    tiny_llava_dir: Path,
    dataset_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.setattr(loading, "load_routed_model", lambda *_args, **_kwargs: cls())
    code = main(["probe", "--model", str(tiny_llava_dir), "--data", str(dataset_dir), "--device", "cpu"])
    assert code == 2
    error = capsys.readouterr().err
    assert error.startswith("error:") and cls.__name__ in error and words in error


def test_bad_input_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["probe"]) == 2
    assert "--results" in capsys.readouterr().err
    assert main(["probe", "--model", "x", "--data", str(tmp_path)]) == 2
    assert "no data/*.parquet" in capsys.readouterr().err
    assert main(["probe", "--results", str(tmp_path / "absent")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_summary_says_why_regions_are_undefined() -> None:
    balance = Balance(None, "a report", "undefined", "the balance point is undefined (undefined: few)")
    items = _items([0.0], [1])
    result = ProbeResult(
        items, {"not_conflict": 2}, balance, oscillations_by_control(items, balance), {}, 2, {}
    )
    text = "\n".join(summary_lines(result))
    assert "regions undefined: the balance point is undefined" in text
    assert "2 the vision-only and text-only answers agree" in text and FIRST_TOKEN_NOTE in text


def test_a_model_path_with_dollar_signs_still_gets_its_heatmap(probed: ProbeResult, tmp_path: Path) -> None:
    import dataclasses

    # lmms-eval keeps such a checkpoint path as it is; two `$` would otherwise open and close mathtext.
    result = dataclasses.replace(probed, provenance={**probed.provenance, "model": "/ckpts/run$1_$2"})
    paths = write_outputs(result, tmp_path / "probe")
    assert paths["heatmap"].is_file() and Image.open(paths["heatmap"]).size[0] > 100
