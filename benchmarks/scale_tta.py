"""Does reading a student at a larger input size than it was trained at help? (test-time scale)

The cephalogram gap to the teacher is largest where the SOS box is smallest ("the student-teacher
gap on a fresh phantom set"). A student is fully convolutional with a GAP head, so it can read any
input size; a larger one shows the box bigger. A student trained with scale jitter
(`scale_jitter` 0.15) has seen the box up to 1.15x larger, so it may gain where a 3.0 student
loses. For each model this prints the accuracy at each size, of the mean of the softmaxes over
all sizes, by third of native box side, and paired against the model's own size.

    python benchmarks/scale_tta.py --data out/fresh7777 --modality ceph \\
        out/preset5/student/model out/pv12/shipped-scale/student/model ... --sizes 384 416 448
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fresh_test import format_gap, paired_gap  # noqa: E402 - benchmarks/ is on sys.path

from sos_core.distill.dataset import load_cases, read_manifest  # noqa: E402
from sos_core.models.model_file import load_model  # noqa: E402


def probabilities(model: torch.nn.Module, x: np.ndarray, t: float) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(x), 16):
            xb = torch.from_numpy(x[i : i + 16]).unsqueeze(1)
            out.append(torch.softmax(model(xb).float() / t, 1))
    return torch.cat(out).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--modality", default="ceph", choices=("slice", "ceph"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[384, 416, 448])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("models", type=Path, nargs="+")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    records = [r for r in read_manifest(args.data) if r.modality == args.modality]
    inputs = {s: load_cases(records, s) for s in args.sizes}
    first = inputs[args.sizes[0]]
    y = np.asarray(first.labels)
    side = np.maximum(*(first.native_boxes[:, 2:] - first.native_boxes[:, :2]).T)
    edges = np.quantile(side, [1 / 3, 2 / 3])
    third = np.digitize(side, edges)  # 0 smallest boxes .. 2 largest
    print(f"{len(y)} {args.modality} cases; box side thirds split at {edges.round(1).tolist()} px")
    for folder in args.models:
        model, card = load_model(folder)
        model.eval()
        own = card.input_size[0]
        probs = {s: probabilities(model, inputs[s].inputs, card.temperature) for s in args.sizes}
        probs["mean"] = sum(probs[s] for s in args.sizes) / len(args.sizes)
        right = {k: p.argmax(1) == y for k, p in probs.items()}
        print(f"\n{folder} (trained at {own} px)")
        for k, r in right.items():
            by_third = " / ".join(f"{100 * r[third == i].mean():.1f}" for i in range(3))
            vs = ""
            if own in right and k != own:
                vs = f", minus {own} px {format_gap(paired_gap(r, right[own]))}"
            label = f"{k} px" if k != "mean" else "mean of sizes"
            print(f"  {label}: {100 * r.mean():.1f} % (box thirds {by_third}){vs}", flush=True)


if __name__ == "__main__":
    main()
