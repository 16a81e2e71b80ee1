"""BatchNorm statistics: running averages (torch's default) against recomputed ones.

Trains the `default` preset's teacher on cephalogram crops, for each seed, twice: once
validating with BatchNorm's running averages (`bn_stats_images` 0, what torch does and what
this project did before), once with the statistics recomputed for the current weights before
each validation (`refresh_batchnorm_stats` in `sos_core/distill/training.py`, the default
now). No early stop, so the two runs of a seed see the same batches; prints validation
accuracy per epoch and the test accuracy of the epoch each run would keep, and writes the
section "BatchNorm statistics: running averages vs recomputed" of benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bn_stats.py --dataset out/pv/data
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._results import machine_line, write_section  # noqa: E402
from sos_core.distill.config import config_from_dict  # noqa: E402
from sos_core.distill.evaluation import evaluate_model_dir  # noqa: E402
from sos_core.distill.presets import get_preset  # noqa: E402
from sos_core.distill.training import train  # noqa: E402

MODES = {"running averages": 0, "recomputed": 512}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True, help="phantom dataset folder with cephalograms")
    ap.add_argument("--modality", default="ceph", choices=["ceph", "slice"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    teacher = {
        k: v for k, v in get_preset("default")["teacher"].items() if k not in ("version", "seed")
    }
    rows = []
    with tempfile.TemporaryDirectory(prefix="sos-bnstats-") as tmp:
        for seed in args.seeds:
            for mode, images in MODES.items():
                t0 = time.time()
                out = Path(tmp) / f"s{seed}-{images}"
                config = {
                    **teacher,
                    "kind": "teacher",
                    "out": str(out),
                    "dataset": args.dataset,
                    "modalities": [args.modality],
                    "device": "cpu",
                    "seed": seed,
                    "epochs": args.epochs,
                    "patience": args.epochs,
                    "bn_stats_images": images,
                }
                result = train(config_from_dict(config), resume=False)
                seconds = time.time() - t0
                report, _ = evaluate_model_dir(
                    result.model_dir, args.dataset, split="test", modalities=(args.modality,)
                )
                accs = [h["val_acc"] for h in result.history]
                losses = [h["train_loss"] for h in result.history]
                test = report["metrics"]["accuracy"]
                rows.append((seed, mode, accs, losses, result.best_epoch, test, seconds))
                print(seed, mode, [round(a, 2) for a in accs], round(test, 3), flush=True)
    lines = [
        f"Run: `{' '.join(sys.argv)}` — {machine_line()}.",
        "",
        f"The `default` preset's teacher on {args.modality} crops of `{Path(args.dataset).name}` "
        f"(lr {teacher['lr']:g}, batch {teacher['batch_size']}, {args.epochs} epochs, no early "
        "stop); validation accuracy after each epoch with BatchNorm's running averages "
        "(torch's default) or with statistics recomputed from 512 un-augmented training crops; "
        "test accuracy of the epoch the run keeps (best validation). Chance is 0.25-0.29.",
        "",
        "| seed | BatchNorm statistics | validation accuracy per epoch | train loss, epoch 1 → 3 "
        "| first epoch ≥ 0.5 (from 0) | kept epoch (from 0) | test accuracy | seconds |",
        "| ---: | --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for seed, mode, accs, losses, best, test, seconds in rows:
        first = next((i for i, a in enumerate(accs) if a >= 0.5), None)
        lines.append(
            f"| {seed} | {mode} | {' '.join(f'{a:.2f}' for a in accs)} | "
            f"{losses[0]:.2f} → {losses[min(2, len(losses) - 1)]:.2f} | "
            f"{'-' if first is None else first} | {best} | {test:.3f} | {seconds:.0f} |"
        )
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("BatchNorm statistics: running averages vs recomputed", text)


if __name__ == "__main__":
    main()
