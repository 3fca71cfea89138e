"""The plugin's data hook: lmms-eval's own task classes (simple and chat) read the resolved folder.

Tasks are built by lmms-eval's real ``TaskManager`` from the installed task folder; the hook is
``ConfigurableTask.download``, which the chat class inherits. Other tasks are never touched, and nothing
is resolved before one of the project's tasks is loaded.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from lmms_eval_runs import offline_env

from modality_conflict.cli.main import main as cli_main
from modality_conflict.dataset_builder import resolve
from modality_conflict.dataset_builder.folder import DatasetFolder
from modality_conflict.mc_tasks import plugin

QUICK_TASK = "modality_conflict_color_quick"


@pytest.fixture
def task_manager(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> object:
    from lmms_eval.tasks import TaskManager

    plugin.install_patches()
    plugin._resolve_once.cache_clear()
    monkeypatch.setenv(resolve.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(resolve.DATA_ENV, raising=False)
    return TaskManager("ERROR", include_defaults=False)


@pytest.mark.parametrize(
    ("task_type", "class_name"), [("simple", "ConfigurableTask"), ("chat", "ConfigurableMessagesTask")]
)
def test_simple_and_chat_tasks_read_the_resolved_folder(
    task_manager: object,
    quick_dataset_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    task_type: str,
    class_name: str,
) -> None:
    from lmms_eval.api.task import ConfigurableTask

    monkeypatch.setenv(resolve.DATA_ENV, str(quick_dataset_dir))
    task = task_manager.load_task_or_group([QUICK_TASK], task_type=task_type)[QUICK_TASK]  # type: ignore[attr-defined]
    assert type(task).__name__ == class_name
    assert type(task).download is ConfigurableTask.download  # the chat class inherits the hook
    folder = str(quick_dataset_dir.resolve())
    assert folder == task.DATASET_PATH and task.config.dataset_path == folder
    assert task.config.dataset_kwargs == {}  # the Hub revision means nothing for a local folder
    assert task.config.metadata["dataset_used"] == {
        "source": "env",
        "path": folder,
        "revision": None,
        "fingerprint": DatasetFolder(quick_dataset_dir).fingerprint,
        "canonical": False,
    }
    assert len(task.test_docs()) == DatasetFolder(quick_dataset_dir).manifest["num_rows"]
    assert not (Path(resolve.cache_root())).exists()


def test_other_tasks_are_left_alone(
    task_manager: object, quick_dataset_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = tmp_path / "other_tasks"
    tasks.mkdir()
    (tasks / "other.yaml").write_text(
        textwrap.dedent(
            f"""
            task: some_other_task
            dataset_path: {quick_dataset_dir}
            test_split: test
            output_type: generate_until
            doc_to_text: "{{{{question}}}}"
            doc_to_target: "{{{{row_id}}}}"
            metadata:
              version: 1
            """
        )
    )

    def unexpected(*args: object, **kwargs: object) -> None:
        raise AssertionError("resolution ran for a task that pins no dataset")

    monkeypatch.setattr(resolve, "resolve_data", unexpected)
    from lmms_eval.tasks import TaskManager

    manager = TaskManager("ERROR", include_path=str(tasks), include_defaults=False)
    task = manager.load_task_or_group(["some_other_task"])["some_other_task"]
    assert str(quick_dataset_dir) == task.DATASET_PATH and "dataset_used" not in task.config.metadata
    del task_manager


def test_nothing_is_resolved_until_one_of_the_tasks_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lmms_eval.models  # noqa: F401 - loads the entry point
    from lmms_eval.api.task import ConfigurableTask
    from lmms_eval.tasks import TaskManager

    calls: list[object] = []
    monkeypatch.setattr(resolve, "resolve_data", lambda *args, **kwargs: calls.append(args))
    monkeypatch.setenv(resolve.CACHE_ENV, str(tmp_path / "cache"))
    plugin.lmms_eval_manifests()  # the entry point again: the hooks stay installed once
    assert getattr(ConfigurableTask.download, "_modality_conflict", False)
    assert not hasattr(ConfigurableTask.download.__wrapped__, "_modality_conflict")
    manager = TaskManager("ERROR", include_defaults=False)  # indexing the tasks reads no data
    assert "modality_conflict_color" in manager.all_tasks
    assert calls == [] and not (tmp_path / "cache").exists()


def test_eval_refuses_a_bad_folder_before_starting_lmms_eval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-data"
    assert cli_main(["eval", "--data", str(missing), "--output", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        f"error: {missing} is not a folder: build one with `modality-conflict build --out {missing}`\n"
    )
    assert "running:" not in captured.out


@pytest.mark.slow
def test_a_data_failure_under_the_lmms_eval_cli_is_one_line_and_a_failed_exit(
    tmp_path: Path, quick_dataset_dir: Path, tiny_llava_dir: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "data").mkdir()
    command = [sys.executable, "-m", "lmms_eval", "--model", "modality_conflict_hf"]
    command += ["--model_args", f"pretrained={tiny_llava_dir},device=cpu,device_map=cpu"]
    command += ["--tasks", QUICK_TASK, "--output_path", str(tmp_path / "out")]
    done = subprocess.run(
        command, env=offline_env(broken), capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {broken} has no readable manifest.json: it was not made by `modality-conflict build` "
        f"(build one with `modality-conflict build --out {broken}`)"
    ]
