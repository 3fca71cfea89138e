"""``modality-conflict report``: reading lmms-eval result folders, the plots and the HTML page."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fixtures_results import write_lmms_eval_run
from PIL import Image

from modality_conflict.analysis.figures import LINE_COLOURS, entropy_spread
from modality_conflict.analysis.html_report import write_report
from modality_conflict.analysis.results import TaskSummary, find_results_files, read_task_results
from modality_conflict.cli.main import main

RESULT_SOURCES = ("synthetic", "tiny_lmms_eval_run")


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Result folders of a vision- and a text-preferring simulated model (one --output_path each)."""
    root = tmp_path_factory.mktemp("results")
    vision = write_lmms_eval_run(
        root / "a", model_id="org/vision-lover", balance_point=-0.5, n_groups=16, seed=1
    )
    text = write_lmms_eval_run(root / "b", model_id="org/text-lover", balance_point=0.5, n_groups=16, seed=2)
    return {"vision": vision.parent, "text": text.parent}


@pytest.fixture(params=RESULT_SOURCES)
def results_dir(request: pytest.FixtureRequest, two_models: dict[str, Path]) -> Path:
    """An lmms-eval --output_path folder: the synthetic run, and the real tiny-model run once it exists."""
    if request.param == "synthetic":
        return two_models["vision"]
    try:
        run = request.getfixturevalue(request.param)
    except pytest.FixtureLookupError:
        pytest.skip(f"fixture {request.param!r} is not defined in this test session")
    return Path(run)


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def _pixels_near(path: Path, hex_colour: str, tolerance: int = 40) -> int:
    target = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(_pixels(path) - target).max(axis=-1) <= tolerance).sum())


def assert_real_image(path: Path) -> None:
    """A PNG that holds a drawing: its pixels vary and it has more than a handful of colours."""
    assert path.is_file() and path.stat().st_size > 2000, path
    pixels = _pixels(path)
    assert pixels.shape[0] > 200 and pixels.shape[1] > 200
    assert float(pixels.std()) > 5.0, f"{path} is nearly uniform"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20, f"{path} has almost no colours"


def check_report_folder(results: Path, out: Path) -> None:
    """Assertions that hold for any lmms-eval result folder of a modality_conflict task."""
    runs = read_task_results([results])
    assert runs and all(run.records for run in runs)
    page = write_report(runs, out)
    text = page.read_text(encoding="utf-8")
    pngs = sorted(out.glob("*.png"))
    assert pngs, "no plot written"
    for png in pngs:
        assert_real_image(png)
        assert f'src="{png.name}"' in text
    for run in runs:
        assert run.label in text
        assert run.summary.inherent_preference().text.split(" (")[0] in text


def test_report_plots_and_page_from_result_folder(results_dir: Path, tmp_path: Path) -> None:
    check_report_folder(results_dir, tmp_path / "report")


def test_results_files_are_found_per_model_folder(two_models: dict[str, Path], tmp_path: Path) -> None:
    folder = next(two_models["vision"].iterdir())
    newest = folder / "20251126_090000_results.json"
    shutil.copy(next(folder.glob("*_results.json")), newest)
    try:
        assert find_results_files(two_models["vision"]) == [newest]
        assert find_results_files(newest) == [newest]
    finally:
        newest.unlink()
    with pytest.raises(FileNotFoundError, match="no lmms-eval results"):
        find_results_files(tmp_path)


def test_records_come_from_the_sample_log(two_models: dict[str, Path]) -> None:
    (run,) = read_task_results([two_models["vision"]])
    assert run.task == "modality_conflict_color"
    assert run.label == "org__vision-lover"
    assert len(run.records) == run.summary.get("n_records")
    assert {r["condition"] for r in run.records} == {"vision_only", "text_only", "conflict"}
    assert run.task_config["dataset_kwargs"]["revision"]


def test_preference_is_read_off_the_planted_balance_point(two_models: dict[str, Path]) -> None:
    runs = read_task_results([two_models["vision"], two_models["text"]])
    assert [r.summary.inherent_preference().modality for r in runs] == ["vision", "text"]
    assert runs[0].summary.balance_point.estimate < 0 < runs[1].summary.balance_point.estimate


def test_several_models_are_overlaid_in_their_own_colours(
    two_models: dict[str, Path], tmp_path: Path
) -> None:
    runs = read_task_results([two_models["vision"], two_models["text"]])
    write_report(runs, tmp_path)
    for name in ("following_curve.png", "entropy_by_tier.png"):
        assert_real_image(tmp_path / name)
        counts = [_pixels_near(tmp_path / name, LINE_COLOURS[i]) for i in range(2)]
        assert min(counts) > 300, f"{name}: pixels per model colour {counts}"
    heatmaps = sorted(tmp_path.glob("tfr_heatmap_*.png"))
    assert len(heatmaps) == 2
    # Different planted preferences give different heatmaps.
    assert not np.array_equal(_pixels(heatmaps[0]), _pixels(heatmaps[1]))


def test_one_model_draws_nothing_in_the_second_colour(two_models: dict[str, Path], tmp_path: Path) -> None:
    write_report(read_task_results([two_models["vision"]]), tmp_path)
    assert _pixels_near(tmp_path / "following_curve.png", LINE_COLOURS[1], tolerance=20) < 50


def test_entropy_intervals_use_one_record_per_prompt(two_models: dict[str, Path]) -> None:
    (run,) = read_task_results([two_models["vision"]])
    spread = entropy_spread(run.records, "vision_only")
    assert set(spread) == {int(t) for t in run.summary.get("mean_hv_by_tier")}
    assert all(n == 16 for _, n in spread.values())  # one vision-only prompt per group and tier
    assert all(half > 0 for half, _ in spread.values())


@pytest.mark.parametrize(
    ("report", "modality", "phrase"),
    [
        ({"balance_point_status": "ok", "balance_point": -0.3, "balance_point_ci_low": -0.5,
          "balance_point_ci_high": -0.1}, "vision", "prefers the image"),
        ({"balance_point_status": "ok", "balance_point": 0.3, "balance_point_ci_low": 0.1,
          "balance_point_ci_high": 0.5}, "text", "prefers the text"),
        ({"balance_point_status": "ok", "balance_point": 0.1, "balance_point_ci_low": -0.2,
          "balance_point_ci_high": 0.4}, "none", "no clear preference"),
        ({"balance_point_status": "censored_below", "balance_point": None, "balance_point_bound": -1.2},
         "vision", "below the smallest dH"),
        ({"balance_point_status": "censored_above", "balance_point": None, "balance_point_bound": 1.1},
         "text", "above the largest dH"),
        ({"balance_point_status": "law_violated", "balance_point_reason": "slope >= 0"},
         "unknown", "slope >= 0"),
    ],
)  # fmt: skip
def test_inherent_preference_wording(report: dict, modality: str, phrase: str) -> None:
    preference = TaskSummary(report).inherent_preference()
    assert preference.modality == modality
    assert phrase in preference.text


def test_run_without_sample_log_still_gets_plots(two_models: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "results"
    shutil.copytree(two_models["text"], copy)
    for log in copy.rglob("*_samples_*.jsonl"):
        log.unlink()
    (run,) = read_task_results([copy])
    assert run.records == () and run.samples_jsonl is None
    page = write_report([run], tmp_path / "report")
    assert "no per-sample log" in page.read_text()
    assert_real_image(tmp_path / "report" / "entropy_by_tier.png")
    with pytest.raises(FileNotFoundError, match="--log_samples"):
        read_task_results([copy], require_samples=True)


def test_undefined_report_is_explained_not_plotted(two_models: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "results"
    shutil.copytree(two_models["text"], copy)
    report_json = next(copy.rglob("*_modality_conflict.json"))
    data = json.loads(report_json.read_text())
    data["reports"]["modality_conflict_color"] = {
        "status": "undefined",
        "reason": "no conflict item has all three conditions",
        "n_conflicts": 0,
    }
    report_json.write_text(json.dumps(data))
    page = write_report(read_task_results([copy]), tmp_path / "report")
    assert "no conflict item has all three conditions" in page.read_text()
    assert not list((tmp_path / "report").glob("*.png"))


def test_cli_report_overlays_folders(
    two_models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    assert main(["report", str(two_models["vision"]), str(two_models["text"]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "org__vision-lover (modality_conflict_color): prefers the image" in printed
    assert "org__text-lover (modality_conflict_color): prefers the text" in printed
    assert (out / "index.html").is_file()


def test_cli_report_bad_input_is_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    assert "error:" in capsys.readouterr().err
    broken = tmp_path / "m" / "20250101_000000_results.json"
    broken.parent.mkdir()
    broken.write_text("{not json")
    assert main(["report", str(tmp_path / "m"), "--out", str(tmp_path / "r")]) == 2
    assert "is not valid JSON" in capsys.readouterr().err


def test_report_shows_what_the_chat_template_wrote(tiny_lmms_eval_run: Path, tmp_path: Path) -> None:
    from modality_conflict.cli.main import main

    assert main(["report", str(tiny_lmms_eval_run), "--out", str(tmp_path / "report")]) == 0
    page = next((tmp_path / "report").glob("*.html")).read_text(encoding="utf-8")
    (run,) = read_task_results([tiny_lmms_eval_run], tasks=["modality_conflict_color"])
    # The tiny LLaVA's template writes "USER: " (and the image placeholder on image rows) before the question.
    assert {preamble for _date, preamble in run.prompts} == {"USER: ", "USER: <image>\n"}
    assert sum(run.prompts.values()) == len(run.records)
    assert "rendered on the template date 2025-01-01" in page and "<pre>USER: &lt;image&gt;\n</pre>" in page


# --- what a reader must be told: dropped conflicts, malformed fields, short logs, bounds ------------------


@pytest.fixture(scope="module")
def half_text_rows_missing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run on a dataset without half of its text-only rows: their conflicts cannot be joined."""
    from fixtures_results import synthetic_docs

    docs = synthetic_docs(8, with_controls=False)
    text_rows = [d["row_id"] for d in docs if d["condition"] == 1]  # CONDITIONS.index("text_only")
    dropped = set(text_rows[::2])
    kept = [d for d in docs if d["row_id"] not in dropped]
    root = tmp_path_factory.mktemp("incomplete")
    write_lmms_eval_run(root, model_id="org/half", docs=kept, balance_point=0.0, seed=3)
    return root


def test_dropped_conflicts_show_in_eval_summary_report_and_warnings(
    half_text_rows_missing: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from modality_conflict.analysis.evaluate import find_run_outputs, format_summary

    (run,) = read_task_results([half_text_rows_missing])
    summary = run.summary
    assert summary.ok and 0 < summary.n_incomplete_conflicts < summary.get("n_conflict_rows")
    missing, total = summary.n_incomplete_conflicts, summary.get("n_conflict_rows")
    (warning,) = run.warnings
    assert f"{missing} of {total} conflict rows were left out" in warning
    text = format_summary(find_run_outputs(half_text_rows_missing, ["modality_conflict_color"]))
    assert f"incomplete conflicts: {missing} of {total} conflict rows left out" in text
    assert f"warning: modality_conflict_color: {missing} of {total} conflict rows were left out" in text
    assert main(["report", str(half_text_rows_missing), "--out", str(tmp_path / "r")]) == 0
    assert f"{missing} of {total} conflict rows were left out" in capsys.readouterr().err
    page = (tmp_path / "r" / "index.html").read_text()
    assert f'<p class="warn">warning: modality_conflict_color: {missing} of {total}' in page
    assert f'<td class="n">{missing} of {total}</td>' in page


def test_dropped_conflicts_are_logged_once_by_the_aggregation(caplog: pytest.LogCaptureFixture) -> None:
    from fixtures_results import simulate_responses, synthetic_docs

    from modality_conflict.mc_tasks import task_logic
    from modality_conflict.mc_tasks.names import METRIC_NAMES
    from modality_conflict.mc_tasks.records import RECORD_FIELD_CHECKS  # noqa: F401 - the contract exists

    docs = synthetic_docs(5, with_controls=False)
    docs = [d for d in docs if not (d["condition"] == 0 and d["visual_tier"] == 0)]  # some vision rows gone
    responses = simulate_responses(docs, balance_point=0.0, seed=4)
    per_metric = [task_logic.process_results(d, [r]) for d, r in zip(docs, responses, strict=True)]
    with caplog.at_level("WARNING", logger="modality_conflict"):
        for name in METRIC_NAMES:
            getattr(task_logic, f"aggregate_{name}")([m[name] for m in per_metric])
    warnings = [r for r in caplog.records if "conflict rows were left out" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]


def test_malformed_field_names_file_and_field_and_writes_nothing(
    two_models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for field, value, expected in (
        ("mean_hv_by_tier", {"x": 0.1}, "field 'mean_hv_by_tier' has the tier key 'x', not an integer"),
        ("tfr_by_tier_cell", {"0": {"zero": 0.5}}, "field 'tfr_by_tier_cell.0' has the tier key 'zero'"),
        ("binned_curve", {"edges": [0, 1], "centres": "0.5"}, "field 'binned_curve.centres' is not a list"),
        ("balance_point", "-0.3", "field 'balance_point' is '-0.3', not a number or null"),
    ):
        copy = tmp_path / field / "results"
        shutil.copytree(two_models["text"], copy)
        report_json = next(copy.rglob("*_modality_conflict.json"))
        data = json.loads(report_json.read_text())
        data["reports"]["modality_conflict_color"][field] = value
        report_json.write_text(json.dumps(data))
        out = tmp_path / field / "out"
        assert main(["report", str(copy), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {report_json}: reports.modality_conflict_color: {expected}"), err
        assert not out.exists()


def test_report_failure_leaves_no_partial_output(
    two_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modality_conflict.analysis import html_report

    runs = read_task_results([two_models["vision"]])
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("kept")

    def broken(*_args: object, **_kwargs: object) -> Path:
        raise RuntimeError("the heatmap failed")

    monkeypatch.setattr(html_report, "plot_tfr_heatmap", broken)
    with pytest.raises(RuntimeError, match="the heatmap failed"):
        write_report(runs, out)
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]  # no plot, no page, no hidden folder


def test_short_sample_log_is_used_with_a_warning_giving_both_counts(
    two_models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "results"
    shutil.copytree(two_models["text"], copy)
    log = next(copy.rglob("*_samples_*.jsonl"))
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[: len(lines) // 2]) + "\n")
    (run,) = read_task_results([copy])
    assert len(run.records) == len(lines) // 2
    (warning,) = [w for w in run.warnings if "sample log" in w]
    assert f"holds {len(lines) // 2} records but {len(lines)} docs" in warning
    assert main(["report", str(copy), "--out", str(tmp_path / "r")]) == 0
    assert f"holds {len(lines) // 2} records but {len(lines)} docs" in capsys.readouterr().err


def test_malformed_record_in_the_sample_log_names_line_and_field(
    two_models: dict[str, Path], tmp_path: Path
) -> None:
    copy = tmp_path / "results"
    shutil.copytree(two_models["text"], copy)
    log = next(copy.rglob("*_samples_*.jsonl"))
    lines = log.read_text().splitlines()
    sample = json.loads(lines[4])
    for key in (
        "tfr",
        "vfr",
        "other_rate",
        "balance_point",
        "balance_point_ci_low",
        "balance_point_ci_high",
        "mean_dh",
        "n_conflicts",
    ):
        sample[key]["visual_tier"] = "hard"
    lines[4] = json.dumps(sample)
    log.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        ValueError, match=rf"{log.name}:5: the per-doc record is malformed: field 'visual_tier' is"
    ):
        read_task_results([copy])


@pytest.mark.parametrize(
    ("values", "shown", "phrase"),
    [
        ({"balance_point_status": "censored_below", "balance_point_bound": -1.234}, "< -1.234", "below"),
        ({"balance_point_status": "censored_above", "balance_point_bound": 0.9}, "> +0.900", "above"),
        (
            {
                "balance_point_status": "separated",
                "balance_point_bound_low": -0.2,
                "balance_point_bound_high": 0.1,
            },
            "in [-0.200, +0.100]",
            "perfectly separated",
        ),
    ],
)
def test_every_view_shows_the_bound_of_a_balance_point(
    values: dict, shown: str, phrase: str, tmp_path: Path
) -> None:
    from modality_conflict.analysis.evaluate import format_summary
    from modality_conflict.analysis.html_report import summary_rows
    from modality_conflict.analysis.leaderboard import _balance_cell
    from modality_conflict.cli.submit import headline

    report = {
        "status": "ok",
        "n_conflicts": 40,
        "entropy_estimator": "full_vocab",
        "balance_point": None,
        **values,
    }
    summary = TaskSummary(report)
    assert summary.balance_point.bounded and summary.balance_point.text() == shown
    assert phrase in summary.inherent_preference().text
    from modality_conflict.analysis.results import ResultsFile
    from modality_conflict.mc_tasks.report_file import write_report_file

    results_json = tmp_path / "2025-01-01T00-00-00_results.json"
    results_json.write_text(json.dumps({"results": {"modality_conflict_color": {"tfr,none": 0.5}}}))
    write_report_file(
        tmp_path / "2025-01-01T00-00-00_modality_conflict.json", {"modality_conflict_color": report}
    )
    table = format_summary(ResultsFile.read(results_json))
    assert f"{shown:>26}" in table.splitlines()[1]
    assert _balance_cell(summary) == shown
    assert summary_rows(summary)[0][1].startswith(shown)
    submission = {"model": {"id": "m"}, "task": {"name": "t"}, "metrics": report, "estimator": "full_vocab"}
    assert f"balance point {shown}," in headline(submission)


def test_a_run_named_with_dollar_signs_is_plotted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # lmms-eval names the model folder after the checkpoint path, `$` included.
    folder = write_lmms_eval_run(tmp_path / "runs", model_id="/ckpts/run$1_$2", n_groups=12, seed=4)
    assert "$1_$2" in folder.name
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "runs"), "--out", str(out)]) == 0, capsys.readouterr().err
    assert len(list(out.glob("*.png"))) >= 3
    assert "run$1_$2" in (out / "index.html").read_text()
