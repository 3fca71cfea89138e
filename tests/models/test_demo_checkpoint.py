"""The demo checkpoint's guards: recipes checked up front, diverged or interrupted training never saved,
cached checkpoints checked against their recorded sha256 before use, one trainer at a time."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from demo_recipes import REDUCED_RECIPE, write_recipe
from lmms_eval_runs import offline_env
from safetensors.torch import load_file, save_file
from tiny_fs import cli, needs_tiny_fs, run_on_tiny_fs

from modality_conflict.cli.main import main as cli_main
from modality_conflict.models.demo import checkpoint as checkpoint_module
from modality_conflict.models.demo.cache import cached_checkpoint, checkpoint_name
from modality_conflict.models.demo.checkpoint import (
    RECIPE_FILE,
    WEIGHTS_FILE,
    checkpoint_problem,
    shipped_checkpoint,
    train_checkpoint_folder,
)
from modality_conflict.models.demo.recipe import recipe_from_mapping

REDUCED = recipe_from_mapping(REDUCED_RECIPE)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding the reduced checkpoint of seed 5 (trained once for the module)."""
    root = tmp_path_factory.mktemp("cache")
    return cached_checkpoint(root, seed=5, recipe=REDUCED)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"vision_width": 0}, "recipe field 'vision_width' must be an integer >= 1, got 0"),
        ({"text_heads": 0}, "recipe field 'text_heads' must be an integer >= 1, got 0"),
        ({"text_heads": 5}, "recipe field 'text_heads' (5) must divide 'text_width' (128)"),
        ({"vision_heads": 3}, "recipe field 'vision_heads' (3) must divide 'vision_width' (64)"),
        (
            {"text_heads": 4, "text_kv_heads": 3},
            "recipe field 'text_kv_heads' (3) must divide 'text_heads' (4)",
        ),
        ({"lr": 1e308}, "recipe field 'lr' must be a learning rate in (0, 1], got 1e+308"),
        ({"vision_lr": 0}, "recipe field 'vision_lr' must be a learning rate in (0, 1], got 0.0"),
        ({"text_width": 1 << 20}, "recipe field 'text_width' must be at most 4096"),
        ({"curriculum": [[5, 0]]}, "recipe field 'curriculum' must have a pair for step 0"),
        ({"curriculum": [[0, 14]]}, "recipe field 'curriculum': tiers must be 0 to 13"),
        ({"world_object_weights": [1, 2]}, "recipe field 'world_object_weights' must be 4 numbers"),
        ({"distractor_share": 2}, "recipe field 'distractor_share' must be a number from 0 to 1, got 2.0"),
    ],
)
def test_recipe_that_cannot_train_is_one_line_before_training(
    changes: dict, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = write_recipe(tmp_path / "recipe.json", **changes)
    assert cli_main(["train-demo-model", "--out", str(tmp_path / "m"), "--recipe", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and str(recipe) in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.json"]


def test_non_finite_learning_rate_is_refused_by_the_command(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.json"
    recipe.write_text('{"lr": NaN}')
    done = subprocess.run(
        cli("train-demo-model", "--out", str(tmp_path / "m"), "--recipe", str(recipe)),
        capture_output=True,
        text=True,
        env=offline_env(None),
        timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr == f"error: --recipe {recipe}: recipe field 'lr' must be a finite number, got nan\n"
    assert not (tmp_path / "m").exists()


def test_diverged_training_saves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_train = checkpoint_module.train_model

    def diverging(*args: object, **kwargs: object) -> torch.nn.Module:
        model = real_train(*args, **kwargs)
        with torch.no_grad():
            model.lm_head.weight[0, 0] = float("nan")
        return model

    monkeypatch.setattr(checkpoint_module, "train_model", diverging)
    recipe = write_recipe(tmp_path / "recipe.json")
    assert cli_main(["train-demo-model", "--out", str(tmp_path / "m"), "--recipe", str(recipe)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("error: training diverged: 1 of 89 weight tensors hold NaN or infinite values")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.json"]


def _start_training(out: Path, recipe: Path) -> tuple[subprocess.Popen[str], Path]:
    """Start ``train-demo-model`` and wait until it is training in its temporary folder."""
    process = subprocess.Popen(
        cli("train-demo-model", "--out", str(out), "--recipe", str(recipe)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=offline_env(None),
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        partials = list(out.parent.glob(f".{out.name}.partial-*"))
        if partials and (partials[0] / "tokenizer.json").is_file():
            return process, partials[0]
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    process.kill()
    raise AssertionError("training never started")


def test_sigkilled_training_is_cleaned_up_by_the_next_run(tmp_path: Path) -> None:
    # Slow enough to be caught mid-way, fast enough for a test.
    recipe = write_recipe(tmp_path / "recipe.json", vision_steps=400)
    out = tmp_path / "runs" / "model"
    out.parent.mkdir()
    process, partial = _start_training(out, recipe)
    process.kill()
    process.communicate()
    assert partial.is_dir() and not out.exists()  # what SIGKILL leaves

    quick = write_recipe(tmp_path / "quick.json")
    done = subprocess.run(
        cli("train-demo-model", "--out", str(out), "--recipe", str(quick)),
        capture_output=True,
        text=True,
        env=offline_env(None),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f"removed {partial.name}, left by an interrupted training" in done.stdout
    assert [p.name for p in out.parent.iterdir()] == ["model"]
    assert checkpoint_problem(out, seed=0, recipe=recipe_from_mapping(REDUCED_RECIPE)) is None


def test_running_training_is_not_mistaken_for_a_stale_one(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "recipe.json", vision_steps=400)
    out = tmp_path / "model"
    process, partial = _start_training(out, recipe)
    try:
        assert checkpoint_module.remove_stale_partials(out) == []
        assert partial.is_dir()
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM
    assert stderr == "terminated: training stopped, nothing written\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.json"]


@needs_tiny_fs
def test_full_disk_is_one_line(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "recipe.json")
    mount = tmp_path / "mnt"
    mount.mkdir()
    argv = cli("train-demo-model", "--out", str(mount / "model"), "--recipe", str(recipe))
    done = run_on_tiny_fs(mount, argv, size_kb=400)  # the processor fits, the weights (900 KB) do not
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"error: cannot write {mount}/model: no space left on the device")
    assert done.left == []


def _foreign(folder: Path, tmp_path: Path) -> None:
    other = train_checkpoint_folder(tmp_path / "other", seed=6, recipe=REDUCED)
    (folder / WEIGHTS_FILE).write_bytes((other / WEIGHTS_FILE).read_bytes())


def _missing(folder: Path, tmp_path: Path) -> None:
    (folder / WEIGHTS_FILE).unlink()


def _truncated(folder: Path, tmp_path: Path) -> None:
    data = (folder / WEIGHTS_FILE).read_bytes()
    (folder / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])


def _nan_with_matching_record(folder: Path, tmp_path: Path) -> None:
    tensors = load_file(folder / WEIGHTS_FILE)
    tensors = {name: torch.full_like(t, float("nan")) for name, t in tensors.items()}
    save_file(tensors, folder / WEIGHTS_FILE, metadata={"format": "pt"})
    record = json.loads((folder / RECIPE_FILE).read_text())
    record["weights_sha256"] = _sha256(folder / WEIGHTS_FILE)
    (folder / RECIPE_FILE).write_text(json.dumps(record))


def _garbled_record(folder: Path, tmp_path: Path) -> None:
    (folder / RECIPE_FILE).write_text("{")


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_foreign, f"{WEIGHTS_FILE} has sha256 "),
        (_missing, f"no {WEIGHTS_FILE}"),
        (_truncated, f"{WEIGHTS_FILE} has sha256 "),
        (_nan_with_matching_record, f"{WEIGHTS_FILE} holds NaN or infinite values in 89 of 89 tensors"),
        (_garbled_record, f"{RECIPE_FILE} is unreadable (JSONDecodeError)"),
    ],
)
def test_damaged_cached_checkpoint_is_retrained_not_used(
    damage, reason: str, trained: Path, tmp_path: Path
) -> None:
    root = tmp_path / "cache"
    folder = root / trained.name
    folder.parent.mkdir()
    folder.mkdir()
    for item in trained.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    damage(folder, tmp_path)
    assert checkpoint_problem(folder, seed=5, recipe=REDUCED).startswith(reason)

    lines: list[str] = []
    again = cached_checkpoint(root, seed=5, recipe=REDUCED, log=lines.append)
    assert again == folder
    assert any(f"cached checkpoint {folder} is not usable ({reason}" in line for line in lines), lines
    assert checkpoint_problem(again, seed=5, recipe=REDUCED) is None
    assert (again / WEIGHTS_FILE).read_bytes() == (trained / WEIGHTS_FILE).read_bytes()  # deterministic
    assert sorted(p.name for p in root.iterdir()) == [f".{folder.name}.lock", folder.name]


_CACHE_SCRIPT = """
import sys
from modality_conflict.models.demo.cache import cached_checkpoint
from modality_conflict.models.demo.recipe import recipe_from_file
folder = cached_checkpoint(sys.argv[1], seed=7, recipe=recipe_from_file(sys.argv[2]), log=print)
print("USING", folder)
"""


def test_concurrent_retrains_both_succeed_and_train_once(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "recipe.json")
    root = tmp_path / "cache"
    command = [sys.executable, "-c", _CACHE_SCRIPT, str(root), str(recipe)]
    env = {**offline_env(None), "OMP_NUM_THREADS": "1"}
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)]
    runs.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    outputs = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err[-2000:] for _, err in outputs]
    folder = root / checkpoint_name(7, REDUCED)
    assert all(out.splitlines()[-1] == f"USING {folder}" for out, _ in outputs)
    trainings = sum("training images in" in out for out, _ in outputs)
    assert trainings == 1, outputs
    assert checkpoint_problem(folder, seed=7, recipe=REDUCED) is None


@pytest.mark.slow
def test_demo_retrain_replaces_foreign_cached_weights(trained: Path, tmp_path: Path) -> None:
    """``demo --retrain`` through the command line, with foreign weights planted under the cache's name."""
    recipe = write_recipe(tmp_path / "recipe.json")
    cache = tmp_path / "cache"
    folder = cache / trained.name
    folder.mkdir(parents=True)
    for item in trained.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    _foreign(folder, tmp_path)
    out = tmp_path / "demo_out"
    argv = ["demo", "--retrain", "--model-seed", "5", "--recipe", str(recipe), "--cache-dir", str(cache)]
    argv += ["--groups", "1", "--out", str(out)]
    env = {**offline_env(None), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cli(*argv), capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"cached checkpoint {folder} is not usable ({WEIGHTS_FILE} has sha256" in done.stdout
    assert (folder / WEIGHTS_FILE).read_bytes() == (trained / WEIGHTS_FILE).read_bytes()
    headline = (out / "headline.txt").read_text()
    assert headline.startswith(f"model: {folder} (demo model trained, seed 5, recipe {recipe});")
    results = list((out / "results").rglob("*_results.json"))
    assert len(results) == 1 and str(folder) in results[0].read_text()


def test_recipe_without_retrain_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = write_recipe(tmp_path / "recipe.json")
    assert cli_main(["demo", "--recipe", str(recipe), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == "error: --recipe applies to --retrain of the demo model only\n"
    assert os.listdir(tmp_path) == ["recipe.json"]


_HUB_PREFIXES = ("vision_tower.vision_model.", "multi_modal_projector.", "language_model.model.")


@pytest.mark.parametrize("which", ["shipped", "trained"])
def test_checkpoint_is_in_the_hub_layout_with_a_servable_head_size(which: str, trained: Path) -> None:
    """Weight names of llava-hf checkpoints (what vLLM and transformers 4.x read), head size 32, and a
    tokenizer class that transformers 4.x knows."""
    folder = shipped_checkpoint() if which == "shipped" else trained
    names = set(load_file(folder / WEIGHTS_FILE))
    assert names and all(n.startswith(_HUB_PREFIXES) or n == "language_model.lm_head.weight" for n in names)
    assert "vision_tower.vision_model.embeddings.patch_embedding.weight" in names
    text = json.loads((folder / "config.json").read_text())["text_config"]
    assert text["hidden_size"] // text["num_attention_heads"] == 32
    assert text["num_attention_heads"] % text["num_key_value_heads"] == 0
    tokenizer = json.loads((folder / "tokenizer_config.json").read_text())
    assert tokenizer["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert tokenizer["extra_special_tokens"] == {"image_token": "<image>"}
