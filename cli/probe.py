"""``modality-conflict probe``: the logit lens at the answer position, layer by layer, on conflict items."""

from __future__ import annotations

import argparse
from pathlib import Path

from modality_conflict.analysis.probe import (
    ProbeError,
    ProbeOptions,
    probe_from_model,
    probe_from_results,
    summary_lines,
    write_outputs,
)
from modality_conflict.cli.arguments import add_subcommand, finite_float, positive_int


def run_probe(args: argparse.Namespace) -> int:
    """``modality-conflict probe``: probe, write probe.json and heatmap.png, print a summary."""
    if args.results is None and (args.model is None or args.data is None):
        raise ProbeError("probe needs --results RESULTS_DIR, or --model PATH_OR_ID with --data DIR")
    options = ProbeOptions(
        balance_point=args.balance_point,
        radius=args.radius,
        bins=args.bins,
        n_resamples=args.n_resamples,
        max_new_tokens=args.max_new_tokens,
        wrapper_kwargs={"device": args.device, "dtype": args.dtype, "batch_size": args.batch_size},
    )
    if args.results is not None:
        result = probe_from_results(
            Path(args.results),
            task=args.task,
            model=args.model,
            data=Path(args.data) if args.data else None,
            options=options,
        )
        results = Path(args.results)
        default_out = (results if results.is_dir() else results.parent) / "probe"
    else:
        result = probe_from_model(
            args.model, Path(args.data), limit_groups=args.limit_groups, options=options
        )
        default_out = Path("probe")
    paths = write_outputs(result, Path(args.out) if args.out else default_out)
    for line in summary_lines(result):
        print(line)
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    """Register the ``probe`` subcommand."""
    parser = add_subcommand(
        subparsers,
        name,
        run_probe,
        "logit lens per layer on the conflict items: oscillations and a heatmap",
        "Project each decoder layer's state at the answer position through the model's final "
        "norm and LM head, label its top-1 token as the vision answer, the text answer or neither, and "
        "count vision/text switches. With --results the lens is read from the sample logs of a "
        "`--model modality_conflict_hf --log_samples` run (no forward pass); otherwise the model answers "
        "the dataset's rows once. Writes probe.json and heatmap.png. Multi-token answers are tracked by "
        "their first token only.",
    )
    parser.add_argument("--model", metavar="PATH_OR_ID", help="checkpoint folder or Hub id (HF decoder MLLM)")
    parser.add_argument("--data", metavar="DIR", help="dataset folder made by `modality-conflict build`")
    parser.add_argument(
        "--results",
        metavar="RESULTS_DIR",
        help="lmms-eval output folder (or *_results.json) of a modality_conflict_hf run with --log_samples",
    )
    parser.add_argument("--task", help="task of the results folder to probe, when it holds several")
    parser.add_argument("--out", metavar="DIR", help="output folder (default RESULTS_DIR/probe, or ./probe)")
    parser.add_argument(
        "--limit-groups", type=positive_int, metavar="N", help="model path: only the first N item groups"
    )
    parser.add_argument(
        "--balance-point",
        type=finite_float,
        metavar="X",
        help="centre of the ambiguous region (default: the run's balance point)",
    )
    parser.add_argument(
        "--radius", type=finite_float, default=0.5, help="ambiguous region |dH - balance| <= radius (0.5)"
    )
    parser.add_argument("--bins", type=positive_int, default=8, help="dH bins of the heatmap (default 8)")
    parser.add_argument(
        "--n-resamples", type=int, default=2000, help="bootstrap resamples for the intervals (2000)"
    )
    parser.add_argument("--device", help="model device (default cuda when available)")
    parser.add_argument("--dtype", default="auto", help="auto, float32, float16 or bfloat16")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="prompts per generate call")
    parser.add_argument("--max-new-tokens", type=positive_int, help="answer length (default the task's, 8)")
    return parser
