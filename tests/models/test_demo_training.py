"""The demo model's training: deterministic for a seed, written whole or not at all, clear errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from demo_recipes import REDUCED_RECIPE
from tiny_fs import cli, needs_tiny_fs, run_on_tiny_fs

from modality_conflict.cli.main import main as cli_main
from modality_conflict.models.demo.cache import cached_checkpoint
from modality_conflict.models.demo.checkpoint import RECIPE_FILE, WEIGHTS_FILE, train_checkpoint_folder
from modality_conflict.models.demo.images import recolouring_is_exact
from modality_conflict.models.demo.recipe import TrainingRecipe, recipe_from_mapping


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("recipe") / "reduced.json"
    path.write_text(json.dumps(REDUCED_RECIPE))
    return path


@pytest.fixture(scope="module")
def reduced_run(recipe_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("train") / "model"
    assert cli_main(["train-demo-model", "--out", str(out), "--seed", "3", "--recipe", str(recipe_file)]) == 0
    return out


def test_same_seed_gives_identical_weights(reduced_run: Path, recipe_file: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    argv = ["train-demo-model", "--out", str(again), "--seed", "3", "--recipe", str(recipe_file)]
    assert cli_main(argv) == 0
    assert (again / WEIGHTS_FILE).read_bytes() == (reduced_run / WEIGHTS_FILE).read_bytes()
    other = train_checkpoint_folder(tmp_path / "other", seed=4, recipe=recipe_from_mapping(REDUCED_RECIPE))
    assert _sha256(other / WEIGHTS_FILE) != _sha256(reduced_run / WEIGHTS_FILE)


def test_checkpoint_folder_records_what_trained_it(reduced_run: Path) -> None:
    record = json.loads((reduced_run / RECIPE_FILE).read_text())
    assert record["seed"] == 3
    assert record["steps"] == REDUCED_RECIPE["steps"]
    assert record["weights_sha256"] == _sha256(reduced_run / WEIGHTS_FILE)
    assert len(record["code"]["demo_package_sha256"]) == 64
    assert recipe_from_mapping(record) == recipe_from_mapping(REDUCED_RECIPE)
    names = {p.name for p in reduced_run.iterdir()}
    assert {"config.json", "processor_config.json", "tokenizer.json", "chat_template.jinja"} <= names
    assert not [p for p in reduced_run.parent.iterdir() if p.name.startswith(".")]


def test_recoloured_training_images_are_renderer_images() -> None:
    assert recolouring_is_exact()


def test_training_leaves_the_torch_settings_as_they_were(reduced_run: Path) -> None:
    import torch

    assert not torch.are_deterministic_algorithms_enabled()


def test_existing_non_empty_out_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert cli_main(["train-demo-model", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {out} exists and is not an empty folder (choose a new --out or remove it)\n"
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_out_under_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert cli_main(["train-demo-model", "--out", str(blocker / "model")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: cannot write {blocker}")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"stepz": 3}', "unknown recipe field 'stepz'"),
        ('{"steps": -1}', "recipe field 'steps' must be an integer >= 0, got -1"),
        ("[1, 2]", "expected a JSON object of recipe fields"),
        ("{", "not valid JSON"),
    ],
)
def test_bad_recipe_file_is_one_line(
    content: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "recipe.json"
    path.write_text(content)
    assert cli_main(["train-demo-model", "--out", str(tmp_path / "m"), "--recipe", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and str(path) in err
    assert not (tmp_path / "m").exists()


def test_recipe_defaults_are_the_shipped_recipe() -> None:
    assert recipe_from_mapping({}) == TrainingRecipe()


def test_interrupted_training_leaves_nothing(tmp_path: Path) -> None:
    def interrupt(line: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_checkpoint_folder(tmp_path / "model", recipe=recipe_from_mapping(REDUCED_RECIPE), log=interrupt)
    assert list(tmp_path.iterdir()) == []


@needs_tiny_fs
def test_read_only_folder_is_one_line(tmp_path: Path) -> None:
    mount = tmp_path / "mnt"
    mount.mkdir()
    done = run_on_tiny_fs(mount, cli("train-demo-model", "--out", str(mount / "model")), read_only=True)
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: cannot write {mount}/model: read-only file system")
    assert done.left == []


def test_cache_trains_once_per_seed_and_recipe(tmp_path: Path) -> None:
    recipe = recipe_from_mapping(REDUCED_RECIPE)
    lines: list[str] = []
    first = cached_checkpoint(tmp_path, seed=5, recipe=recipe, log=lines.append)
    trained_lines = len(lines)
    assert trained_lines > 0 and (first / WEIGHTS_FILE).is_file()
    again = cached_checkpoint(tmp_path, seed=5, recipe=recipe, log=lines.append)
    assert again == first and len(lines) == trained_lines  # reused, not trained again
    other = cached_checkpoint(tmp_path, seed=6, recipe=recipe, log=lines.append)
    assert other != first and len(lines) > trained_lines
    assert "seed5" in first.name and "recipe" in first.name


def test_every_benchmark_prompt_is_in_the_vocabulary() -> None:
    from modality_conflict.dataset_builder.plan import group_rows
    from modality_conflict.dataset_builder.prompts import row_prompt
    from modality_conflict.models.demo.vocabulary import build_tokenizer

    tokenizer = build_tokenizer()
    rows = [row for group in range(3) for row in group_rows(0, group)]
    unknown = {
        row_prompt(row) for row in rows if tokenizer.unk_token_id in tokenizer(row_prompt(row))["input_ids"]
    }
    assert len(rows) > 200 and unknown == set()
