"""`sos train-teacher`, `sos distill` and `sos train --preset`: the training commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from sos_core.errors import ParameterError


def register(sub: argparse._SubParsersAction) -> None:
    for name, kind, text in (
        ("train-teacher", "teacher", "train the crop teacher from a run configuration"),
        ("distill", "student", "distil the full-image student from a frozen teacher"),
    ):
        p = sub.add_parser(
            name,
            help=text,
            description=f"{text[0].upper()}{text[1:]} (TOML or JSON; see docs/training.md). "
            "The resolved configuration, history, checkpoint and model folder are written to "
            "the run's `out` folder; an interrupted run resumes from its last epoch.",
        )
        p.add_argument("config", help="run configuration (.toml or .json)")
        p.add_argument("--dataset", help="override the configuration's dataset folder")
        p.add_argument("--out", help="override the configuration's output folder")
        p.add_argument("--teacher", help="override the teacher model folder (distill)")
        p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
        p.add_argument("--seed", type=int, help="override the seed")
        p.add_argument("--epochs", type=int, help="override the number of epochs")
        p.add_argument("--no-resume", action="store_true", help="start afresh")
        p.add_argument(
            "--describe",
            metavar="MODEL",
            help="train nothing: remake the card of the trained model folder MODEL for this "
            "configuration (validation, calibration, review statistics, read_sizes) and save "
            "it with the same weights to the run's out/model",
        )
        p.set_defaults(func=run_config, kind=kind)
    p = sub.add_parser(
        "train",
        help="regenerate a named preset (phantom data, teacher, student)",
        description="Regenerate the models of a preset end to end: phantom dataset, teacher, "
        "student, evaluation. `--preset default` rebuilds the embedded model in "
        "resources/models/.",
    )
    p.add_argument("--preset", default="default", help="preset name (default: default)")
    p.add_argument("--work", default="out/train-default", help="folder for data and runs")
    p.add_argument("--out", help="where the final models go (default: resources/models)")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    p.set_defaults(func=run_preset)


def run_config(args: argparse.Namespace) -> int:
    from sos_core.distill.config import load_config
    from sos_core.distill.training import describe_trained, train

    config = load_config(args.config)
    if config.kind != args.kind:
        raise ParameterError(
            f"{Path(args.config).name} configures a {config.kind} run; use "
            f"`sos {'train-teacher' if config.kind == 'teacher' else 'distill'}` for it."
        )
    overrides = {
        k: v
        for k, v in {
            "dataset": args.dataset,
            "out": args.out,
            "teacher": args.teacher,
            "device": args.device,
            "seed": args.seed,
            "epochs": args.epochs,
        }.items()
        if v is not None
    }
    config = config.replace(**overrides)
    if args.describe:
        result = describe_trained(config, args.describe)
        done = f"described the weights of {args.describe}, unchanged"
    else:
        result = train(config, progress=_bar(config.epochs), resume=not args.no_resume)
        done = f"best epoch {result.best_epoch}"
    m = result.card.metrics["validation"]
    sys.stdout.write(
        f"saved {result.model_dir} ({done}; validation accuracy "
        f"{m['accuracy']:.3f}, pointing game {m['pointing_game']:.3f}, ECE {m['ece']:.3f})\n"
    )
    return 0


def run_preset(args: argparse.Namespace) -> int:
    from sos_core.distill.presets import run_preset as _run

    _run(
        args.preset,
        work=Path(args.work),
        out=Path(args.out) if args.out else None,
        device=args.device,
        progress_factory=_bar,
    )
    return 0


def _bar(total: int) -> Callable[[float], None]:
    """A tqdm bar on stderr driven by a fraction-done callback."""
    from tqdm import tqdm

    bar = tqdm(total=total, unit="epoch", file=sys.stderr, leave=False)

    def update(fraction: float) -> None:
        bar.n = round(fraction * total)
        bar.refresh()
        if bar.n >= total:
            bar.close()

    return update
