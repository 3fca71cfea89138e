"""The package as a user gets it: a non-editable install, its data files, and lmms-eval finding its tasks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TASK_FILES = {
    "_default_template_yaml",
    "modality_conflict.yaml",
    "modality_conflict_color.yaml",
    "modality_conflict_color_quick.yaml",
    "modality_conflict_controls.yaml",
    "modality_conflict_loglik.yaml",
    "modality_conflict_sampled.yaml",
    "utils.py",
    "README.md",
}
PROJECT_TASKS = {
    "modality_conflict",
    "modality_conflict_color",
    "modality_conflict_color_quick",
    "modality_conflict_controls",
    "modality_conflict_loglik",
    "modality_conflict_sampled",
}


_NOT_SOURCE = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis", ".ruff_cache")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy without the checkout's build outputs: setuptools reuses build/lib, so an earlier
    # build's files (a moved or deleted module) would otherwise ship again.
    source = tmp_path_factory.mktemp("source") / "repo"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*_NOT_SOURCE))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(source),
        ],
        check=True,
    )
    (built,) = out.glob("modality_conflict-*.whl")
    return built


@pytest.fixture(scope="module")
def installed_env(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh environment holding only the non-editable wheel, borrowing third-party packages read-only."""
    env_dir = tmp_path_factory.mktemp("env")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    site = Path(
        subprocess.run(
            [
                str(env_dir / "bin" / "python"),
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
    )
    # A plain path entry: the development environment's own .pth files (the editable install) are not run.
    (site / "borrowed_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env_dir


def test_wheel_holds_one_import_package_with_task_files(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"modality_conflict"}
    task_dir = "modality_conflict/mc_tasks/modality_conflict/"
    assert {name[len(task_dir) :] for name in names if name.startswith(task_dir)} >= TASK_FILES
    for module in (
        "models/hf_model.py",
        "analysis/results.py",
        "cli/probe.py",
        "analysis/probe/runner.py",
        "analysis/submission/submission.schema.json",
        "dataset_builder/folder.py",
    ):
        assert f"modality_conflict/{module}" in names, module
    # Code only the tests use (the tiny checkpoint zoo) stays out of the wheel.
    assert not [name for name in names if "tiny" in name.split("/")], "test-only code in the wheel"
    checkpoint = "modality_conflict/models/demo_checkpoint/"
    shipped = {name[len(checkpoint) :] for name in names if name.startswith(checkpoint)}
    assert shipped == {p.name for p in (REPO / "models" / "demo_checkpoint").iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "training_recipe.json"} <= shipped
    # Every source file of the checkout is in the wheel (a sub-package missing from pyproject.toml's
    # list, or a task file its package-data misses, would break only the installed copy).
    repo = Path(__file__).resolve().parents[2]
    for folder in ("dataset_builder", "metrics", "models", "mc_tasks", "analysis", "cli"):
        for source in (repo / folder).rglob("*"):
            if source.is_file() and "__pycache__" not in source.parts and source.suffix != ".pyc":
                relative = source.relative_to(repo).as_posix()
                assert f"modality_conflict/{relative}" in names, relative
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[lmms_eval.models]" in text and "modality-conflict = modality_conflict.cli.main:main" in text


def test_non_editable_install_imports_from_site_packages(installed_env: Path, tmp_path: Path) -> None:
    python = installed_env / "bin" / "python"
    code = (
        "import modality_conflict.metrics as m, modality_conflict.mc_tasks.plugin as p; "
        "print(m.__file__); print(p.TASKS_DIR); import importlib.util; "
        "print(importlib.util.find_spec('metrics')); "
        "from modality_conflict.dataset_builder import canonical; print(canonical.PINS_PATH); "
        "from modality_conflict.models.demo.checkpoint import shipped_checkpoint; print(shipped_checkpoint())"
    )
    # Run outside the repository: `python -c` puts the working directory first on sys.path.
    lines = subprocess.run(
        [str(python), "-c", code], cwd=tmp_path, check=True, capture_output=True, text=True
    ).stdout.split("\n")
    assert str(installed_env) in lines[0] and str(REPO) not in lines[0]
    assert (Path(lines[1]) / "_default_template_yaml").is_file()
    assert lines[2] == "None", "the install must not provide a bare top-level `metrics` module"
    # The dataset pins file ships in the installed package, beside the builder that reads it.
    assert str(installed_env) in lines[3] and Path(lines[3]).name == "pins.json"
    # The demo model is read from the installed package, not from the checkout.
    shipped = Path(lines[4])
    assert str(installed_env) in str(shipped)
    repo_copy = REPO / "models" / "demo_checkpoint" / "model.safetensors"
    assert (shipped / "model.safetensors").read_bytes() == repo_copy.read_bytes()


def test_lmms_eval_cli_lists_tasks_from_non_editable_install(installed_env: Path, tmp_path: Path) -> None:
    python = installed_env / "bin" / "python"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("MODALITY_CONFLICT_DATA", None)
    completed = subprocess.run(
        [str(python), "-m", "lmms_eval", "--tasks", "list"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    listed = {line.strip(" -") for line in (completed.stdout + completed.stderr).splitlines()}
    assert listed >= PROJECT_TASKS, completed.stderr[-2000:]


def test_console_script_help_names_every_subcommand(installed_env: Path) -> None:
    python = installed_env / "bin" / "python"
    completed = subprocess.run(
        [str(python), "-m", "modality_conflict.cli.main", "--help"],
        cwd=installed_env,
        capture_output=True,
        text=True,
        check=True,
    )
    for name in (
        "build",
        "validate",
        "push",
        "eval",
        "probe",
        "report",
        "submit",
        "verify",
        "leaderboard",
        "train-demo-model",
        "demo",
    ):
        assert name in completed.stdout
