"""Images whose file does not say what they show: does the student read them as the right kind?

A student that reads cephalograms at another size than slices must know which one an image is.
DICOM files say (DX/CR: cephalogram; CT: slice); a PNG or JPEG outside a dataset folder does
not. The `Predictor` then reads it at the default size and takes the modality of the nearest
stage-and-modality mean of its pooled features (the unsuitable-image statistics), re-reading at
that modality's size when it differs. This scores every image of a phantom dataset three ways,
each with the card's temperature: with its kind known (as a DICOM file or a dataset PNG is read),
with its kind unknown (the inference above), and at the default size alone (what a model without
the inference would do):

    python benchmarks/kind_from_features.py --data out/fresh7777 [--model DIR] [--write]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._results import machine_line, write_section  # noqa: E402
from sos_core.distill.dataset import read_manifest  # noqa: E402
from sos_core.distill.metrics import expected_calibration_error  # noqa: E402
from sos_core.imaging import open_study  # noqa: E402
from sos_core.inference.predictor import Predictor, default_model_dir  # noqa: E402
from sos_core.preprocess import image_from_study  # noqa: E402

TITLE = "Inference: images of unknown kind read at the size of the kind they look like"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model_dir = args.model or default_model_dir()
    predictor = Predictor(model_dir, device="cpu", threads=args.threads)
    card = predictor.card
    records = read_manifest(args.data)
    start = time.perf_counter()
    rows = []
    for rec in records:
        pixels, _ = image_from_study(open_study(rec.path))
        known = predictor.predict_image(pixels, kind=rec.modality)
        unknown = predictor.predict_image(pixels, kind=None)
        rows.append((rec.modality, rec.stage, known, unknown))
    # The default size alone: the same model with no sizes per modality.
    plain = Predictor(model_dir, device="cpu", threads=args.threads)
    plain.card = card.replace(modality_input_sizes={})
    plain_preds = [plain.predict_image(image_from_study(open_study(r.path))[0]) for r in records]
    minutes = (time.perf_counter() - start) / 60

    lines = [
        f"`benchmarks/kind_from_features.py --data {args.data}`, {machine_line()}, "
        f"{args.threads} threads, {minutes:.1f} min. Model `{card.version}` (default "
        f"{card.input_size[0]} px; "
        + ", ".join(f"{m} at {s[0]} px" for m, s in card.modality_input_sizes.items())
        + f"); {len(records)} images of `{args.data.name}`.",
        "",
        "| true kind | images | read as slice | read as cephalogram | accuracy, kind known | "
        "accuracy, kind unknown | accuracy, default size | ECE known / unknown / default |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for modality in ("slice", "ceph"):
        idx = [i for i, r in enumerate(rows) if r[0] == modality]
        if not idx:
            continue
        labels = np.array([rows[i][1] for i in idx])
        read = [rows[i][3].extra.get("read_as") for i in idx]

        def acc(preds: list, labels: np.ndarray = labels) -> float:
            return 100 * float(np.mean([p.stage == y for p, y in zip(preds, labels, strict=True)]))

        def ece(preds: list, labels: np.ndarray = labels) -> float:
            probs = np.array([p.probabilities for p in preds])
            return float(expected_calibration_error(probs, labels))

        known = [rows[i][2] for i in idx]
        unknown = [rows[i][3] for i in idx]
        default = [plain_preds[i] for i in idx]
        lines.append(
            f"| {modality} | {len(idx)} | {read.count('slice')} | {read.count('ceph')} | "
            f"{acc(known):.1f} % | {acc(unknown):.1f} % | {acc(default):.1f} % | "
            f"{ece(known):.3f} / {ece(unknown):.3f} / {ece(default):.3f} |"
        )
    body = "\n".join(lines)
    print(body)
    if args.write:
        write_section(TITLE, body)


if __name__ == "__main__":
    main()
