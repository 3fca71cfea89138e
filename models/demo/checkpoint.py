"""A demo checkpoint folder: written whole or not at all, in the Hub's layout, checked before it is used.

An ordinary ``LlavaForConditionalGeneration`` checkpoint under the Hub's weight names, so transformers
4.x, 5.x and vLLM load it; ``training_recipe.json`` records the seed, the recipe, the code and the weights'
sha256, which :func:`checkpoint_problem` checks before anything uses the weights.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from importlib import resources
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from transformers import AutoProcessor, GenerationConfig
from transformers.utils import logging as hf_logging

from modality_conflict.dataset_builder.atomic import (
    ensure_folder,
    os_error_text,
    process_alive,
    temporary_sibling,
)
from modality_conflict.dataset_builder.constants import BUILDER_VERSION
from modality_conflict.dataset_builder.errors import OutputWriteError
from modality_conflict.models.demo.recipe import TrainingRecipe, recipe_from_mapping
from modality_conflict.models.demo.training import deterministic_torch, non_finite_tensors, train_model
from modality_conflict.models.demo.vocabulary import build_processor, build_tokenizer, save_processor
from modality_conflict.models.hub_layout import save_hub_layout

#: Folder of the packaged seed-0 checkpoint, in the ``modality_conflict.models`` package.
SHIPPED_CHECKPOINT_DIR = "demo_checkpoint"
#: File of a checkpoint folder that records the seed, the recipe and the code that trained it.
RECIPE_FILE = "training_recipe.json"
WEIGHTS_FILE = "model.safetensors"
#: Held (``flock``) by the process training into a temporary folder; a folder whose lock is free is stale.
_TRAINING_LOCK = ".training.lock"
_PARTIAL = "partial"


def code_version() -> dict[str, str]:
    """What identifies the training code: the sha256 of this package's sources and the builder version."""
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    return {"demo_package_sha256": digest.hexdigest(), "builder_version": BUILDER_VERSION}


def shipped_checkpoint() -> Path:
    """Folder of the packaged checkpoint (seed 0, default recipe), loadable with ``from_pretrained``."""
    return Path(str(resources.files("modality_conflict.models") / SHIPPED_CHECKPOINT_DIR))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def checkpoint_problem(folder: str | os.PathLike[str], *, seed: int, recipe: TrainingRecipe) -> str | None:
    """Why ``folder`` is not the complete, intact checkpoint of ``seed`` and ``recipe``, or None: the
    recipe file, the weights' recorded sha256 and finite weights are checked before anything is trusted."""
    folder = Path(folder)
    try:
        record = json.loads((folder / RECIPE_FILE).read_text())
    except FileNotFoundError:
        return f"no {RECIPE_FILE}"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"{RECIPE_FILE} is unreadable ({type(error).__name__})"
    if not isinstance(record, dict) or not isinstance(record.get("weights_sha256"), str):
        return f"{RECIPE_FILE} records no weights_sha256"
    if record.get("seed") != seed:
        return f"{RECIPE_FILE} records seed {record.get('seed')!r}, not {seed}"
    try:
        recorded_recipe = recipe_from_mapping(record, source=RECIPE_FILE)
    except ValueError as error:
        return str(error)
    if recorded_recipe != recipe:
        return f"{RECIPE_FILE} records another recipe"
    weights = folder / WEIGHTS_FILE
    try:
        digest = _sha256(weights)
    except FileNotFoundError:
        return f"no {WEIGHTS_FILE}"
    except OSError as error:
        return f"{WEIGHTS_FILE} is unreadable ({error.strerror or error})"
    if digest != record["weights_sha256"]:
        return (
            f"{WEIGHTS_FILE} has sha256 {digest[:12]}..., not the recorded {record['weights_sha256'][:12]}..."
        )
    try:
        tensors = load_file(weights)
    except (SafetensorError, OSError) as error:
        return f"{WEIGHTS_FILE} is unreadable ({error})"
    bad = [name for name, tensor in tensors.items() if not bool(torch.isfinite(tensor).all())]
    if bad:
        return f"{WEIGHTS_FILE} holds NaN or infinite values in {len(bad)} of {len(tensors)} tensors"
    return None


def _storage_error(error: SafetensorError) -> OSError:
    """The ``OSError`` that a safetensors write error wraps (it reports the OS error only as text)."""
    text = str(error)
    for code, markers in ((errno.ENOSPC, ("StorageFull", "No space left")), (errno.EROFS, ("ReadOnly",))):
        if any(marker in text for marker in markers):
            return OSError(code, os.strerror(code))
    return OSError(errno.EIO, text.splitlines()[0] if text else "write failed")


def _save_weights(model: torch.nn.Module, out: Path) -> None:
    """``config.json`` and one ``model.safetensors`` with the Hub's key names."""
    progress_bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # one file: a bar would only clutter the output and errors
    try:
        save_hub_layout(model, out, max_shard_size="1GB")  # one file, under the Hub's names
    except SafetensorError as error:
        raise _storage_error(error) from None
    finally:
        if progress_bars:
            hf_logging.enable_progress_bar()


def _train_into(out: Path, seed: int, recipe: TrainingRecipe, log: Callable[[str], None] | None) -> None:
    """Train the demo LLaVA from scratch into the existing folder ``out``: on one thread with
    deterministic kernels, so a seed gives the same weights byte for byte; diverged weights are not saved."""
    code = code_version()  # of the code that runs, even if a file changes while it trains
    with deterministic_torch():
        torch.manual_seed(seed)
        start = time.perf_counter()
        processor = build_processor(build_tokenizer(), class_token=recipe.class_token_table)
        save_processor(processor, out)
        processor = AutoProcessor.from_pretrained(out)  # train on exactly what evaluation will load
        model = train_model(processor, recipe, seed=seed, log=log)
        elapsed = time.perf_counter() - start
    bad = non_finite_tensors(model)
    if bad:
        total = len(model.state_dict())
        raise RuntimeError(
            f"training diverged: {len(bad)} of {total} weight tensors hold NaN or infinite values "
            f"(first {bad[0]}); nothing was saved (lower the learning rates)"
        )
    _save_weights(model, out)
    GenerationConfig(
        bos_token_id=processor.tokenizer.bos_token_id,
        eos_token_id=processor.tokenizer.eos_token_id,
        pad_token_id=processor.tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=8,
    ).save_pretrained(out)
    record = {
        "seed": seed,
        **asdict(recipe),
        "code": code,
        "weights_sha256": _sha256(out / WEIGHTS_FILE),
        "training_seconds": round(elapsed, 1),
    }
    (out / RECIPE_FILE).write_text(json.dumps(record, indent=2) + "\n")


def _is_stale(partial: Path) -> bool:
    """Whether a temporary training folder belongs to no running training (its lock is free)."""
    try:
        descriptor = os.open(partial / _TRAINING_LOCK, os.O_RDWR)  # never created here
    except OSError:
        # No lock file (yet, or written by older code): stale once the process in its name is gone.
        pid = partial.name.rsplit(f".{_PARTIAL}-", 1)[-1].split("-")[0]
        return pid.isdigit() and not process_alive(int(pid))
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(descriptor)
    return True


def remove_stale_partials(out: Path) -> list[Path]:
    """Remove the temporary folders that an interrupted training into ``out`` left; return them."""
    removed = []
    for partial in sorted(out.parent.glob(f".{out.name}.{_PARTIAL}-*")):
        if partial.is_dir() and _is_stale(partial):
            shutil.rmtree(partial, ignore_errors=True)
            removed.append(partial)
    return removed


@contextlib.contextmanager
def exclusive_lock(path: Path, *, remove: bool = False, report_as: Path | None = None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created; an error names ``report_as``, default ``path``);
    ``remove`` deletes it after, else the next run reuses it."""
    try:
        handle = path.open("a")
    except OSError as error:
        raise OutputWriteError(os_error_text(error, report_as or path)) from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if remove:
                path.unlink(missing_ok=True)


def train_checkpoint_folder(
    out: str | Path,
    *,
    seed: int = 0,
    recipe: TrainingRecipe | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Train the demo model into ``out`` (absent or an empty folder) whole or not at all.

    Training writes into a hidden temporary sibling renamed to ``out`` when complete; one that a killed run
    left is removed by the next run into the same ``out``.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty folder (choose a new --out or remove it)")
    ensure_folder(out.parent)
    for stale in remove_stale_partials(out):
        if log:
            log(f"removed {stale.name}, left by an interrupted training")
    tmp = temporary_sibling(out, _PARTIAL)
    try:
        tmp.mkdir()
    except OSError as error:
        raise OutputWriteError(os_error_text(error, out)) from None
    try:
        with exclusive_lock(tmp / _TRAINING_LOCK, remove=True, report_as=out):
            _train_into(tmp, seed, recipe or TrainingRecipe(), log)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputWriteError(os_error_text(error, out)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
