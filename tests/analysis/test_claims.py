"""Only true claims rank: ``submit`` and ``verify --run`` hold a submission's dataset to what its run read,
the leaderboard keys its tables by what it verified (one row per model, each file once), and
``eval-results`` verifies as the leaderboard does or says plainly that the result is unverified."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from dataset_edits import rehash
from fixtures_results import write_lmms_eval_run

from modality_conflict.analysis.leaderboard import build_leaderboard
from modality_conflict.analysis.task_summary import TaskSummary
from modality_conflict.cli.main import main
from modality_conflict.dataset_builder.builder import build_dataset
from modality_conflict.dataset_builder.canonical import CANONICAL
from modality_conflict.dataset_builder.folder import DatasetFolder
from modality_conflict.dataset_builder.resolve import CACHE_ENV


@pytest.fixture(scope="module")
def data_x(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("x") / "color-conflict"
    build_dataset(out, groups=6, seed=0, workers=1)
    return out


@pytest.fixture(scope="module")
def data_d(data_x: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Dataset X with altered texts: the same row ids and truth fields, another fingerprint."""
    out = tmp_path_factory.mktemp("d") / "color-conflict"
    shutil.copytree(data_x, out)
    for name in DatasetFolder(out).manifest_data_files():
        table = pq.read_table(out / name)
        texts = [f"{text} (altered)" for text in table["text"].to_pylist()]
        pq.write_table(table.set_column(table.schema.get_field_index("text"), "text", [texts]), out / name)
        rehash(out, name)
    assert DatasetFolder(out).fingerprint != DatasetFolder(data_x).fingerprint
    return out


def _docs(data_dir: Path) -> list[dict[str, Any]]:
    return (
        DatasetFolder(data_dir)
        .read_table([c for c in DatasetFolder(data_dir).kind.features if c != "image"])
        .to_pylist()
    )


def _run(data_dir: Path, root: Path, *, model_id: str = "org/model", balance_point: float = -0.3) -> Path:
    """A simulated lmms-eval run on ``data_dir`` (its config records the data read, as a real run's does)."""
    write_lmms_eval_run(
        root,
        model_id=model_id,
        docs=_docs(data_dir),
        dataset_path=str(data_dir),
        dataset_revision=None,
        balance_point=balance_point,
    )
    return root


@pytest.fixture(scope="module")
def run_x(data_x: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(data_x, tmp_path_factory.mktemp("run-x"))


# --- submit and verify --run compare the claim with the run's dataset_used ---


def test_submit_refuses_a_dataset_the_run_did_not_read(
    run_x: Path, data_d: Path, data_x: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.json"
    assert main(["submit", str(run_x), "--out", str(out), "--data", str(data_d)]) == 2
    err = capsys.readouterr().err
    assert "the dataset claimed does not match the data the run read" in err
    assert f"dataset.fingerprint {DatasetFolder(data_d).fingerprint[:12]} is not the data the run read" in err
    assert not out.exists()
    args = ["submit", str(run_x), "--out", str(out), "--dataset-repo", CANONICAL.repo_id]
    assert main(args) == 2
    assert f"claim the published {CANONICAL.repo_id}" in capsys.readouterr().err
    assert main(["submit", str(run_x), "--out", str(out), "--data", str(data_x)]) == 0
    assert json.loads(out.read_text())["dataset"]["fingerprint"] == DatasetFolder(data_x).fingerprint


def test_verify_run_refuses_a_fingerprint_edited_into_a_submission(
    run_x: Path, data_d: Path, data_x: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    honest = tmp_path / "honest.json"
    assert main(["submit", str(run_x), "--out", str(honest), "--data", str(data_x)]) == 0
    claimed = json.loads(honest.read_text())
    claimed["dataset"]["fingerprint"] = DatasetFolder(data_d).fingerprint
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(claimed))
    # Same row ids and truth fields: the dataset check alone cannot tell the runs apart ...
    assert main(["verify", str(forged), "--data", str(data_d)]) == 0
    capsys.readouterr()
    # ... the run's own record of what it read can.
    assert main(["verify", str(forged), "--data", str(data_d), "--run", str(run_x)]) == 2
    assert "is not the data the run read" in capsys.readouterr().err
    assert main(["verify", str(honest), "--data", str(data_x), "--run", str(run_x)]) == 0


# --- the leaderboard: verified keys, one row per model, each file once ---


def _ranked_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("| ") and line[2].isdigit()]


def test_the_leaderboard_keys_tables_by_what_it_verified(
    data_x: Path, run_x: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    subs = tmp_path / "subs"
    subs.mkdir()
    first, later = subs / "a-first.json", subs / "a-later.json"
    assert main(["submit", str(run_x), "--out", str(first), "--data", str(data_x)]) == 0
    rerun = _run(data_x, tmp_path / "rerun", balance_point=0.4)
    assert main(["submit", str(rerun), "--out", str(later), "--data", str(data_x)]) == 0
    for path, created in ((first, "2025-01-01T00:00:00+00:00"), (later, "2025-02-01T00:00:00+00:00")):
        data = json.loads(path.read_text())
        data["created"] = created
        path.write_text(json.dumps(data))
    shutil.copy(first, subs / "z-copy.json")  # the same file, linked twice
    renamed = json.loads(first.read_text())
    renamed["model"]["id"] = "org/other"
    renamed["dataset"]["repo"] = CANONICAL.repo_id  # text the submitter writes: no table of its own
    (subs / "renamed.json").write_text(json.dumps(renamed))
    capsys.readouterr()
    _, _, markdown = build_leaderboard(subs, tmp_path / "out", data=data_x)
    tables = [line for line in markdown.splitlines() if line.startswith("## modality_conflict")]
    assert tables == [
        f"## modality_conflict_color on the dataset of fingerprint {DatasetFolder(data_x).fingerprint[:12]}, "
        "entropy: full_vocab"
    ]
    rows = _ranked_rows(markdown)
    assert len(rows) == 2 and sum("org/model" in row for row in rows) == 1
    latest = TaskSummary(json.loads(later.read_text())["metrics"]).balance_point.text()
    assert latest in next(row for row in rows if "org/model" in row)
    unranked = markdown.split("## Unranked")[1].split("## Not listed")[0]
    assert "UNRANKED a-first.json: org/model" in unranked and "a-later.json is ranked" in unranked
    not_listed = markdown.split("## Not listed")[1]
    assert "z-copy.json: the same bytes as a-first.json" in not_listed


# --- eval-results verifies as the leaderboard does, or says it did not ---


def test_eval_results_verify_against_the_pinned_dataset_by_default(
    run_x: Path,
    data_x: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    submission = tmp_path / "s.json"
    assert main(["submit", str(run_x), "--out", str(submission), "--data", str(data_x)]) == 0
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))  # the pinned dataset cannot be had here
    out = tmp_path / "hub"
    capsys.readouterr()
    assert main(["eval-results", str(submission), "--out", str(out), "--dataset-id", "me/x"]) == 2
    assert "error: no dataset to check the submissions against" in capsys.readouterr().err
    assert not (out / ".eval_results").exists()
    # Against the dataset, a partial submission is refused; unverified, the files say so.
    partial = json.loads(submission.read_text())
    partial["records"] = [r for r in partial["records"] if r["group_id"] != 0]
    from modality_conflict.analysis.submission import json_normal
    from modality_conflict.mc_tasks.records import summarize_records

    partial["metrics"] = json_normal(summarize_records(partial["records"]))
    (tmp_path / "partial.json").write_text(json.dumps(partial))
    args = ["eval-results", str(tmp_path / "partial.json"), "--out", str(out), "--dataset-id", "me/x"]
    assert main([*args, "--data", str(data_x)]) == 2
    assert "a ranked submission covers every row" in capsys.readouterr().err
    assert main([*args, "--unverified"]) == 0
    assert "UNVERIFIED" in capsys.readouterr().out
    written = next((out / ".eval_results").glob("*.yaml")).read_text()
    assert "UNVERIFIED" in written and "verified with" not in written
    assert (
        main(
            [
                "eval-results",
                str(submission),
                "--out",
                str(out),
                "--dataset-id",
                "me/x",
                "--data",
                str(data_x),
            ]
        )
        == 0
    )
    assert "verified with modality-conflict" in next((out / ".eval_results").glob("*.yaml")).read_text()


def test_eval_results_refuse_a_task_name_of_another_package(
    run_x: Path, data_x: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    submission = tmp_path / "s.json"
    assert main(["submit", str(run_x), "--out", str(submission), "--data", str(data_x)]) == 0
    data = json.loads(submission.read_text())
    data["task"]["name"] = ".."
    (tmp_path / "dots.json").write_text(json.dumps(data))
    out = tmp_path / "hub"
    for extra in (["--data", str(data_x)], ["--unverified"]):
        capsys.readouterr()
        assert (
            main(
                [
                    "eval-results",
                    str(tmp_path / "dots.json"),
                    "--out",
                    str(out),
                    "--dataset-id",
                    "me/x",
                    *extra,
                ]
            )
            == 2
        )
        assert "'..' is not a modality_conflict task of this package" in capsys.readouterr().err
    assert not (out / ".eval_results").exists()


# --- smaller: tier order, one "at" ---


def test_tiers_are_listed_in_numeric_order() -> None:
    table = {str(tier): tier / 10 for tier in (0, 1, 10, 2, 11, 3)}
    summary = TaskSummary({"vision_accuracy_by_tier": dict(sorted(table.items()))})
    assert list(summary.accuracy_by_tier("vision_accuracy_by_tier")) == ["0", "1", "2", "3", "10", "11"]


def test_a_truncated_json_file_is_named_with_one_at(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "modality-conflict-submission", "model": "abc')
    assert main(["verify", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "Unterminated string starting at line 1 column" in err and "at at" not in err
