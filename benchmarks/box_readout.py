"""Probe: does evidence outside the SOS box change the student's stage?

The student's head is global average pooling + one linear layer, so its logits are the mean over
feature cells of per-cell class scores. This compares the stage read from all cells (what the
model does) with the stage read only from the cells inside the true box, widened by 1, 1.5, 2.5
and 4 times. If the box-only reading were much better, the student would be distracted by the
rest of the image; if it is the same, its weakness is how well it reads the box itself.

    .venv/bin/python benchmarks/box_readout.py --data out/pv/data --split test --modality ceph \
        out/preset5/student/model out/pv6/shipped-seed1/models/student ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sos_core.distill.dataset import load_cases, read_manifest, select  # noqa: E402
from sos_core.models.model_file import load_model  # noqa: E402

WIDENINGS = (1.0, 1.5, 2.5, 4.0)


def readouts(model_dir: Path, data: Path, split: str, modality: str) -> dict[str, float]:
    model, card = load_model(model_dir)
    model.eval()
    cases = load_cases(select(read_manifest(data), split, [modality]), card.input_size[0])
    with torch.no_grad():
        feats = [
            model.forward_with_features(torch.from_numpy(cases.inputs[i : i + 8]).unsqueeze(1))[0]
            for i in range(0, len(cases.inputs), 8)
        ]
    a = torch.cat(feats).float()
    linear = model.classifier
    scores = torch.einsum("kc,nchw->nkhw", linear.weight.detach(), a)  # per-cell class scores
    bias = linear.bias.detach()
    cell = card.input_size[0] / a.shape[-1]
    y = cases.labels
    out = {
        "all cells (the model)": float(((scores.mean((2, 3)) + bias).argmax(1).numpy() == y).mean())
    }
    for widen in WIDENINGS:
        logits = []
        for n, (x0, y0, x1, y1) in enumerate(cases.boxes.tolist()):
            cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * widen / 2
            c0, c1 = max(int((cx - half) // cell), 0), int(np.ceil((cx + half) / cell))
            r0, r1 = max(int((cy - half) // cell), 0), int(np.ceil((cy + half) / cell))
            logits.append(scores[n, :, r0:r1, c0:c1].mean((1, 2)) + bias)
        pred = torch.stack(logits).argmax(1).numpy()
        out[f"cells in the box x{widen:g}"] = float((pred == y).mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", type=Path, help="student model folders")
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--modality", default="ceph")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for m in args.models:
        res = readouts(m, args.data, args.split, args.modality)
        print(m, args.modality, args.split, {k: round(100 * v, 1) for k, v in res.items()})


if __name__ == "__main__":
    main()
