"""The canonical dataset resolves itself: the README's command on a machine with no Hub and no local data.

The first run of ``lmms-eval --tasks modality_conflict`` builds the pinned 400-group dataset into the
cache (2 worker processes), a second run reuses it without rebuilding, and a run on an explicit folder
built separately with 1 worker gives the same per-sample answers and the same report; both builds have
the pinned fingerprint, byte for byte. The two canonical builds are the slowest part of the suite, so they
are made once here.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lmms_eval_runs import offline_env

from modality_conflict.analysis.evaluate import find_run_outputs
from modality_conflict.cli.main import main as cli_main
from modality_conflict.dataset_builder import canonical
from modality_conflict.dataset_builder.canonical import CANONICAL, CANONICAL_ATTRIBUTE
from modality_conflict.dataset_builder.folder import DatasetFolder
from modality_conflict.dataset_builder.resolve import CACHE_ENV, WORKERS_ENV
from modality_conflict.mc_tasks.names import ATTRIBUTE_TASK, GROUP, MAIN_TASK, RECORD_KEY

pytestmark = pytest.mark.slow

LIMIT = "81"  # the first item group: enough to compare answers, cheap to run three times


@dataclass(frozen=True)
class Run:
    output: Path
    stdout: str
    stderr: str
    results: dict[str, Any]
    samples: list[dict[str, Any]]


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _run(command: list[str], output: Path, cache: Path, tasks: tuple[str, ...] = (GROUP,)) -> Run:
    output.mkdir(parents=True)
    env = offline_env(None) | {CACHE_ENV: str(cache), WORKERS_ENV: "2"}
    started = time.time()
    done = subprocess.run(command, cwd=output, env=env, capture_output=True, text=True, timeout=1200)
    (output / "run.log").write_text(done.stdout + "\n--- stderr ---\n" + done.stderr)
    assert done.returncode == 0, f"exit {done.returncode}; see {output / 'run.log'}"
    outputs = find_run_outputs(output, list(tasks), since=started - 1)
    samples = [json.loads(line) for line in outputs.samples[MAIN_TASK].read_text().splitlines()]
    return Run(output, done.stdout, done.stderr, outputs.results, samples)


def _model_args(tiny_llava_dir: Path) -> str:
    return f"pretrained={tiny_llava_dir},device=cpu,device_map=cpu"


@pytest.fixture(scope="module")
def one_worker_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("canonical") / "color-conflict"
    build = ["build", "--preset", CANONICAL.preset, "--seed", str(CANONICAL.seed), "--workers", "1"]
    assert cli_main([*build, "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory, tiny_llava_dir: Path, cache: Path) -> Run:
    """The README's command, as a new user types it, with an empty cache."""
    command = [sys.executable, "-m", "lmms_eval", "--model", "modality_conflict_hf"]
    command += ["--model_args", _model_args(tiny_llava_dir), "--tasks", GROUP]
    command += ["--output_path", "out", "--log_samples", "--limit", LIMIT, "--batch_size", "1"]
    return _run(command, tmp_path_factory.mktemp("first") / "run", cache)


def _eval(tiny_llava_dir: Path, *extra: str) -> list[str]:
    command = [sys.executable, "-m", "modality_conflict.cli.main", "eval", "--model-args"]
    return [*command, _model_args(tiny_llava_dir), "--output", "out", "--limit", LIMIT, *extra]


@pytest.fixture(scope="module")
def second_run(
    tmp_path_factory: pytest.TempPathFactory, tiny_llava_dir: Path, cache: Path, first_run: Run
) -> tuple[Run, dict[Path, int]]:
    folder = Path(first_run.results["configs"][MAIN_TASK]["dataset_path"])
    before = {p: p.stat().st_mtime_ns for p in [folder, *folder.rglob("*")]}
    return _run(_eval(tiny_llava_dir), tmp_path_factory.mktemp("second") / "run", cache), before


def _used(run: Run) -> dict[str, Any]:
    return run.results["configs"][MAIN_TASK]["metadata"]["dataset_used"]


def test_the_first_run_builds_the_pinned_dataset_into_the_cache(first_run: Run, cache: Path) -> None:
    folder = cache / "datasets" / canonical.CANONICAL.cache_name
    attribute_folder = cache / "datasets" / canonical.CANONICAL_ATTRIBUTE.cache_name
    building = [line for line in first_run.stderr.splitlines() if "building the dataset" in line]
    # The group runs the colour and the attribute task: each pinned dataset is built once.
    assert sorted(building) == sorted(
        f"[modality_conflict] building the dataset ({spec.describe()}) into {where}: "
        "no Hub copy is pinned, so it is made here once and reused by later runs"
        for spec, where in ((canonical.CANONICAL, folder), (canonical.CANONICAL_ATTRIBUTE, attribute_folder))
    )
    assert DatasetFolder(attribute_folder).fingerprint == CANONICAL_ATTRIBUTE.fingerprint
    attribute_used = first_run.results["configs"][ATTRIBUTE_TASK]["metadata"]["dataset_used"]
    assert attribute_used["source"] == "built" and attribute_used["canonical"] is True
    assert f"fingerprint {CANONICAL.fingerprint[:12]} matches the pin" in first_run.stderr
    assert _used(first_run) == {
        "source": "built",
        "path": str(folder),
        "revision": None,
        "fingerprint": CANONICAL.fingerprint,
        "canonical": True,
    }
    assert first_run.results["configs"][MAIN_TASK]["dataset_path"] == str(folder)
    assert len(first_run.samples) == int(LIMIT)


def test_builds_with_one_and_two_workers_are_the_pinned_bytes(
    first_run: Run, cache: Path, one_worker_build: Path
) -> None:
    two_workers = cache / "datasets" / canonical.CANONICAL.cache_name
    assert DatasetFolder(one_worker_build).fingerprint == CANONICAL.fingerprint
    assert DatasetFolder(two_workers).fingerprint == CANONICAL.fingerprint
    assert _digests(two_workers) == _digests(one_worker_build)


def test_the_second_run_reuses_the_cache(second_run: tuple[Run, dict[Path, int]], first_run: Run) -> None:
    run, before = second_run
    assert "building" not in run.stderr
    assert _used(run) == {**_used(first_run), "source": "cache"}
    folder = Path(_used(run)["path"])
    assert {p: p.stat().st_mtime_ns for p in [folder, *folder.rglob("*")]} == before
    assert (
        f"[modality_conflict] data: cache (canonical, fingerprint {CANONICAL.fingerprint[:12]})" in run.stderr
    )
    # `modality-conflict eval` says which data the run read.
    assert (
        f"data ({MAIN_TASK}): cache - the pinned dataset, fingerprint {CANONICAL.fingerprint}, {folder}"
        in run.stdout
    )


def _comparable(run: Run) -> tuple[Any, list[Any]]:
    (report_file,) = run.output.rglob("*_modality_conflict.json")
    report = json.loads(report_file.read_text())["reports"][MAIN_TASK]
    records = sorted((s["doc_id"], s[RECORD_KEY]) for s in run.samples)
    return report, records


def test_results_equal_a_run_on_an_explicit_folder(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_llava_dir: Path,
    first_run: Run,
    second_run: tuple[Run, dict[Path, int]],
    one_worker_build: Path,
) -> None:
    explicit = _run(
        _eval(tiny_llava_dir, "--data", str(one_worker_build), "--tasks", MAIN_TASK),
        tmp_path_factory.mktemp("explicit") / "run",
        tmp_path_factory.mktemp("unused-cache"),
        tasks=(MAIN_TASK,),
    )
    assert _used(explicit)["source"] == "env" and _used(explicit)["canonical"] is True
    assert _used(explicit)["path"] == str(one_worker_build.resolve())
    assert _comparable(explicit) == _comparable(first_run) == _comparable(second_run[0])
