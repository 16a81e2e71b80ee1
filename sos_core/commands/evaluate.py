"""`sos evaluate`: score a model folder on a dataset split and write the reports."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score a model on a dataset split (accuracy, F1, kappa, ECE, pointing game)",
        description="Evaluate a model folder on a dataset split. Writes report.json, report.md "
        "and confusion.png to --out; teachers are scored on crops of the true SOS box, "
        "students on full images.",
    )
    p.add_argument("model", help="model folder (weights.safetensors + model.json)")
    p.add_argument("--dataset", required=True, help="dataset folder with manifest.jsonl")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--modality", action="append", help="restrict to a modality (repeatable)")
    p.add_argument("--out", default="out/evaluation", help="report folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sos_core.distill.evaluation import evaluate_model_dir, report_markdown, write_report

    report, _card = evaluate_model_dir(
        args.model,
        args.dataset,
        split=args.split,
        modalities=tuple(args.modality) if args.modality else None,
    )
    write_report(report, args.out)
    sys.stdout.write(report_markdown(report))
    return 0
