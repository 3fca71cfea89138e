"""``modality-conflict report``: reading lmms-eval result folders, the plots and the HTML page."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fixtures_results import write_lmms_eval_run
from PIL import Image

from modality_conflict.mc_tasks.cli import main
from modality_conflict.mc_tasks.figures import LINE_COLOURS, entropy_spread
from modality_conflict.mc_tasks.html_report import write_report
from modality_conflict.mc_tasks.results import TaskSummary, find_results_files, read_task_results

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
    results_json = next(copy.rglob("*_results.json"))
    data = json.loads(results_json.read_text())
    data["results"]["modality_conflict_color"]["report,none"] = {
        "status": "undefined",
        "reason": "no conflict item has all three conditions",
        "n_conflicts": 0,
    }
    results_json.write_text(json.dumps(data))
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
    assert "is not a JSON file" in capsys.readouterr().err


def test_report_shows_what_the_chat_template_wrote(tiny_lmms_eval_run: Path, tmp_path: Path) -> None:
    from modality_conflict.mc_tasks.cli import main

    assert main(["report", str(tiny_lmms_eval_run), "--out", str(tmp_path / "report")]) == 0
    page = next((tmp_path / "report").glob("*.html")).read_text(encoding="utf-8")
    (run,) = read_task_results([tiny_lmms_eval_run])
    # The tiny LLaVA's template writes "USER: " (and the image placeholder on image rows) before the question.
    assert {preamble for _date, preamble in run.prompts} == {"USER: ", "USER: <image>\n"}
    assert sum(run.prompts.values()) == len(run.records)
    assert "rendered on the template date 2025-01-01" in page and "<pre>USER: &lt;image&gt;\n</pre>" in page
