"""How many epochs the student's crop warm-up needs (docs/training.md, the warm-up section).

The warm-up of `benchmarks/distillation.py` and of the `default` preset (the student on 64 px
crops at 2.7x context, lr 3e-3, batch 64) trained for each seed and epoch budget with no early
stop; prints the validation accuracy per epoch and at the end, and writes the section
"Distillation: the student's warm-up, 12 vs 24 epochs" of benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/warmup_epochs.py --dataset out/bench-distill/data-slice-1000
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
from sos_core.distill.training import train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True, help="phantom dataset folder (slice modality)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, nargs="+", default=[12, 24])
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="sos-warmup-") as tmp:
        for seed in args.seeds:
            for epochs in args.epochs:
                t0 = time.time()
                result = train(
                    config_from_dict(
                        {
                            "kind": "teacher",
                            "out": str(Path(tmp) / f"s{seed}-e{epochs}"),
                            "seed": seed,
                            "model": {"key": "student", "kwargs": {"width": 1.0}},
                            "batch_size": 64,
                            "lr": args.lr,
                            "dataset": args.dataset,
                            "modalities": ["slice"],
                            "device": "cpu",
                            "crop_size": 64,
                            "crop_context": 2.7,
                            "epochs": epochs,
                            "patience": epochs,
                        }
                    ),
                    resume=False,
                )
                accs = [h["val_acc"] for h in result.history]
                rows.append((seed, epochs, accs, time.time() - t0))
                print(seed, epochs, [round(a, 2) for a in accs], flush=True)
    lines = [
        f"Run: `{' '.join(sys.argv)}` — {machine_line()}.",
        "",
        f"Student warm-up on 64 px crops (2.7x context, lr {args.lr:g}, batch 64, no early stop), "
        f"dataset `{Path(args.dataset).name}`; validation accuracy.",
        "",
        "| seed | epochs | last epoch | best | first epoch above 0.35 | seconds |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for seed, epochs, accs, seconds in rows:
        above = next((i for i, a in enumerate(accs) if a > 0.35), None)
        lines.append(
            f"| {seed} | {epochs} | {accs[-1]:.2f} | {max(accs):.2f} | "
            f"{'-' if above is None else above} | {seconds:.0f} |"
        )
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("Distillation: the student's warm-up, 12 vs 24 epochs", text)


if __name__ == "__main__":
    main()
