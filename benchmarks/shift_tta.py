"""Does averaging a student's reading over small image shifts help? (test-time augmentation)

Reads one modality of a phantom dataset at the student's input size, predicts each image
unshifted and shifted by 1-2 input pixels (torch.roll), and prints the accuracy of each shift
and of the mean of the softmaxes over the first 5 and all 9 shifts.

    python benchmarks/shift_tta.py --data out/fresh7777 --modality ceph out/preset5/student/model

Session 14, 3.0 student seed 0, 1000 fresh cephalograms: 84.6 % unshifted, 83.7-84.6 % per
shift, 84.6 % for both means (docs/training.md "Ideas measured and dropped"). Those figures
came from the ad hoc probe this script was written from (same shifts, batches and temperature);
the script itself has not been rerun on them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sos_core.distill.dataset import load_cases, read_manifest  # noqa: E402
from sos_core.models.model_file import load_model  # noqa: E402

SHIFTS = [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1), (2, 2), (-2, -2), (2, -2), (-2, 2)]


def shifted_probs(
    model: torch.nn.Module, x: torch.Tensor, shift: tuple[int, int], t: float
) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(x), 32):
            xb = torch.roll(x[i : i + 32], shifts=shift, dims=(2, 3))
            out.append(torch.softmax(model(xb).float() / t, 1))
    return torch.cat(out).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--modality", default="ceph", choices=("slice", "ceph"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("models", type=Path, nargs="+")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    records = [r for r in read_manifest(args.data) if r.modality == args.modality]
    for folder in args.models:
        model, card = load_model(folder)
        model.eval()
        cases = load_cases(records, card.input_size[0])
        x, y = torch.from_numpy(cases.inputs).unsqueeze(1), np.asarray(cases.labels)
        probs = {s: shifted_probs(model, x, s, card.temperature) for s in SHIFTS}
        for s, p in probs.items():
            print(f"{folder} shift {s}: {100 * (p.argmax(1) == y).mean():.1f} %", flush=True)
        for k in (5, 9):
            mean = sum(probs[s] for s in SHIFTS[:k]) / k
            print(f"{folder} mean of {k} shifts: {100 * (mean.argmax(1) == y).mean():.1f} %")


if __name__ == "__main__":
    main()
