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


def _swap_answers_into(source: Path, target: Path) -> None:
    """Copy the shards of ``source`` into ``target/data`` with every row's vision and text answers swapped."""
    import pyarrow.parquet as pq

    (target / "data").mkdir(parents=True)
    for name in DatasetFolder(source).manifest_data_files():
        table = pq.read_table(source / name)
        vision, text = (table.schema.get_field_index(k) for k in ("vision_answer", "text_answer"))
        swapped = table.set_column(vision, "vision_answer", table["text_answer"])
        pq.write_table(swapped.set_column(text, "text_answer", table["vision_answer"]), target / name)


@pytest.mark.slow
def test_lmms_eval_reads_the_manifests_shards_whatever_the_card_says(
    tmp_path: Path, quick_dataset_dir: Path, tiny_llava_dir: Path
) -> None:
    import json
    import shutil

    from dataset_edits import rehash

    from modality_conflict.mc_tasks.names import RECORD_KEY

    data = tmp_path / "data"
    shutil.copytree(quick_dataset_dir, data)
    _swap_answers_into(quick_dataset_dir, tmp_path / "elsewhere")
    card = (data / "README.md").read_text()
    assert "path: data/" in card
    (data / "README.md").write_text(card.replace("path: data/", f"path: {tmp_path / 'elsewhere'}/data/"))
    rehash(data, "README.md")  # the folder still verifies: only the card moved
    truth = DatasetFolder(data).index_rows(["vision_answer", "text_answer"])
    command = [sys.executable, "-m", "lmms_eval", "--model", "modality_conflict_hf"]
    command += ["--model_args", f"pretrained={tiny_llava_dir},device=cpu,device_map=cpu", "--limit", "6"]
    command += ["--tasks", QUICK_TASK, "--output_path", str(tmp_path / "out"), "--log_samples"]
    env = {**offline_env(data), "HF_DATASETS_CACHE": str(tmp_path / "hf_datasets")}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (samples,) = (tmp_path / "out").rglob(f"*_samples_{QUICK_TASK}.jsonl")
    records = [json.loads(line)[RECORD_KEY] for line in samples.read_text().splitlines()]
    assert len(records) == 6
    for record in records:
        expected = truth[record["row_id"]]
        assert (record["vision_answer"], record["text_answer"]) == (
            expected["vision_answer"],
            expected["text_answer"],
        )
    (results,) = (tmp_path / "out").rglob("*_results.json")
    used = json.loads(results.read_text())["configs"][QUICK_TASK]["metadata"]["dataset_used"]
    assert used["fingerprint"] == DatasetFolder(data).fingerprint and used["source"] == "env"
    # The rows never went through the `datasets` Arrow cache, which nothing verifies.
    assert [p for p in (tmp_path / "hf_datasets").rglob("*") if p.is_file()] == []


def _default_signal_handling() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize(("signal_name", "status"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_during_the_first_run_build_is_one_line(
    tmp_path: Path, tiny_llava_dir: Path, signal_name: str, status: int
) -> None:
    import os
    import signal

    cache = tmp_path / "cache"
    env = {**offline_env(None), resolve.CACHE_ENV: str(cache), resolve.WORKERS_ENV: "1"}
    command = [sys.executable, "-m", "lmms_eval", "--model", "modality_conflict_hf"]
    command += ["--model_args", f"pretrained={tiny_llava_dir},device=cpu,device_map=cpu"]
    command += ["--tasks", "modality_conflict_color", "--output_path", str(tmp_path / "out")]
    child = subprocess.Popen(
        command,
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # As at a terminal: a runner started in the background (a CI job, `cmd &`) ignores SIGINT, and a
        # child inherits that, so Ctrl-C would never reach it.
        preexec_fn=_default_signal_handling,
    )
    try:
        lines = []
        assert child.stderr is not None
        for line in child.stderr:
            lines.append(line)
            if "building the dataset" in line:
                break
        child.send_signal(getattr(signal, signal_name))
        _, rest = child.communicate(timeout=300)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
    stderr = "".join(lines) + rest
    assert any("building the dataset" in line for line in lines), stderr[-3000:]
    assert child.returncode == status, stderr[-3000:]
    assert "Traceback" not in stderr
    interrupted = [line for line in stderr.splitlines() if line.startswith("interrupted")]
    assert interrupted == [
        f"interrupted ({signal_name}) while preparing the dataset: nothing half-written was kept; the next "
        "run prepares it again"
    ]
    datasets = cache / "datasets"
    assert [p.name for p in datasets.iterdir() if not p.name.endswith(".lock")] == []
