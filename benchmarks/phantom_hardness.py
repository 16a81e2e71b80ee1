"""Phantom hardness: the stage must be readable in the SOS crop and nowhere else.

Renders balanced cases at the default size (256 x 256, 0.9 mm), cuts the SOS box (the expert
crop, resized to 32 x 32) and blanks the box in the full image (resized to 64 x 64), then trains
the same classifiers on each: multinomial logistic regression on pixels and a small CNN (three
conv blocks, global average pooling). Chance is 25 %. The age-only rule (nearest class mean
age) is shown as the peer: what age alone predicts, which the image outside the box should not
beat.

Run: ``.venv/bin/python benchmarks/phantom_hardness.py [--train 1200 --test 400 --epochs 15]``;
the result goes to the "Phantom: speed and hardness" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _results import machine_line  # benchmarks/ is on sys.path as a script
from phantom_speed import update_part

from sos_core.phantom.hardness import age_only_accuracy, logistic_eval, make_data, train_eval
from sos_core.phantom.stages import N_STAGES


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=1200)
    ap.add_argument("--test", type=int, default=400)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--no-cnn", action="store_true", help="logistic regression only")
    ap.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = ap.parse_args()
    torch.set_num_threads(1)  # a shared 2-core machine: one thread is fastest and steadiest
    t0 = time.perf_counter()
    train = make_data(args.train, seed=101)
    test = make_data(args.test, seed=202)
    t_render = time.perf_counter() - t0
    print(f"rendered {args.train + args.test} cases in {t_render:.0f} s")
    res: dict[str, float] = {}
    res["lr crop"] = logistic_eval(train.crops, train.stages, test.crops, test.stages)
    res["lr blank"] = logistic_eval(train.blanked, train.stages, test.blanked, test.stages)
    print(res)
    if not args.no_cnn:
        t = time.perf_counter()
        res["cnn crop"] = train_eval(
            train.crops, train.stages, test.crops, test.stages, epochs=args.epochs
        )
        res["cnn blank"] = train_eval(
            train.blanked, train.stages, test.blanked, test.stages, epochs=args.epochs
        )
        print(res, f"{time.perf_counter() - t:.0f} s")
    age = age_only_accuracy(train.ages, train.stages, test.ages, test.stages)
    counts = ", ".join(str(int(c)) for c in np.bincount(test.stages, minlength=N_STAGES))
    best_crop = max(res["lr crop"], res.get("cnn crop", 0.0))
    best_blank = max(res["lr blank"], res.get("cnn blank", 0.0))
    command = (
        f"benchmarks/phantom_hardness.py --train {args.train} --test {args.test} "
        f"--epochs {args.epochs}"
    )
    rows = [
        "| classifier | SOS crop | full image, SOS box blanked |",
        "| --- | ---: | ---: |",
        f"| logistic regression on pixels | {res['lr crop']:.1%} | {res['lr blank']:.1%} |",
    ]
    if "cnn crop" in res:
        rows.append(
            f"| small CNN ({args.epochs} epochs) | {res['cnn crop']:.1%} | {res['cnn blank']:.1%} |"
        )
    rows.append(f"| peer: age alone (nearest stage mean age) | {age:.1%} | {age:.1%} |")
    crop_ok = "met" if best_crop >= 0.8 else "NOT met"
    blank_ok = "met" if best_blank <= 0.35 else "NOT met"
    text = "\n".join(
        [
            f"Hardness, produced by `{command}` ({machine_line()}; rendering {t_render:.0f} s).",
            "",
            f"Balanced stages (test set {counts} per stage; chance 25 %). Crop: the SOS box of a "
            "256 x 256 slice resized to 32 x 32. Blanked: the same slice with the box filled by "
            "the image median, resized to 64 x 64.",
            "",
            *rows,
            "",
            f"Targets: crop accuracy >= 80 %: {best_crop:.1%} ({crop_ok}); blanked near chance "
            f"(<= 35 %): {best_blank:.1%} ({blank_ok}). Age is deliberately informative (published "
            "per-stage mean ages), as in real patients, but it is not visible outside the box.",
        ]
    )
    print(text)
    if not args.no_write:
        update_part("hardness", text)


if __name__ == "__main__":
    main()
