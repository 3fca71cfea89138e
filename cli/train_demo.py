"""``modality-conflict train-demo-model``: train the demo LLaVA from scratch on the CPU."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from modality_conflict.cli.arguments import add_subcommand
from modality_conflict.cli.arguments import seed as seed_type


def _exit_on_sigterm(signum: int, frame: object) -> None:
    print("terminated: training stopped, nothing written", file=sys.stderr, flush=True)
    raise SystemExit(128 + signum)


def run_train_demo_model(args: argparse.Namespace) -> int:
    """Train into ``--out`` (a new or empty folder), print progress and the weights' sha256."""
    from modality_conflict.models.demo.checkpoint import RECIPE_FILE, train_checkpoint_folder
    from modality_conflict.models.demo.recipe import TrainingRecipe, recipe_from_file

    recipe = recipe_from_file(args.recipe) if args.recipe else TrainingRecipe()
    out = Path(args.out)
    # A SIGTERM unwinds like an interrupt, so the temporary folder is removed before the process ends.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    started = time.perf_counter()

    def log(line: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {line}", flush=True)

    train_checkpoint_folder(out, seed=args.seed, recipe=recipe, log=log)
    record = json.loads((out / RECIPE_FILE).read_text())
    print(f"wrote {out} (model.safetensors sha256 {record['weights_sha256']})")
    return 0


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    """Register the ``train-demo-model`` subcommand."""
    summary = "train the demo model (a small LLaVA that reads colours) from scratch on the CPU"
    description = (
        "Train the demo LLaVA (CLIP-style ViT + Llama-style language model, about 650K parameters) on "
        "rendered images and texts that never conflict, and save it as a Hugging Face checkpoint folder with "
        "its processor and chat template. One thread, deterministic for a seed; about 4 minutes with the "
        "default recipe."
    )
    parser = add_subcommand(subparsers, name, run_train_demo_model, summary, description)
    parser.add_argument("--out", required=True, metavar="DIR", help="new (or empty) folder to write")
    parser.add_argument("--seed", type=seed_type, default=0, help="seed of weights and data (default 0)")
    parser.add_argument(
        "--recipe",
        metavar="FILE",
        help="JSON object of recipe fields to change (see TrainingRecipe); default: the shipped recipe",
    )
    return parser
