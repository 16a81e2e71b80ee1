"""Where trained students ended up: accuracy, loss, and the state of the head and features.

Diagnoses why a student trained with L_cls only stayed at chance: for each model folder given,
on the validation full images of a phantom dataset, it reports accuracy, cross-entropy, the mean
|weight| of the Linear head, how much the pooled features vary between images, and how much the
logits do. A student stuck at the class prior has near-constant logits; the columns say whether
that is dead channels (features all zero), features that no longer tell images apart, or a head
that has shrunk.

    python benchmarks/student_head_state.py --dataset out/pv/data \
        "warm-up, seed 2=out/pv7/shipped-seed2/student-warmup/model" \
        "L_cls only, seed 2=out/pv7/shipped-cls-only-seed2/student/model" --write
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TITLE = "Distillation: where L_cls-only students stall (head and features)"


def measure(model_dir: Path, x: torch.Tensor, labels: np.ndarray) -> dict[str, float]:
    import torch

    from sos_core.models.model_file import load_model

    model, _ = load_model(model_dir)
    with torch.no_grad():  # in pieces: 300 full images at once would hold several GB
        feats = torch.cat([model.forward_features(p) for p in x.split(32)])
        logits = model.logits_from_features(feats)
    pooled = feats.mean((2, 3))
    y = torch.as_tensor(labels)
    return {
        "accuracy": float((logits.argmax(1) == y).float().mean()),
        "nll": float(torch.nn.functional.cross_entropy(logits, y)),
        "head_weight": float(model.classifier.weight.detach().abs().mean()),
        "dead_channels": float((feats.amax((0, 2, 3)) <= 0).float().mean()),
        "pooled_std": float(pooled.std(0).mean()),
        "logit_std": float(logits.std(0).mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--input-size", type=int, default=384)
    ap.add_argument("--split", default="val")
    ap.add_argument("models", nargs="+", help="NAME=MODEL_FOLDER")
    ap.add_argument("--note", default="", help="how the models were made")
    ap.add_argument("--reading", type=Path, help="a hand-written reading to put under the table")
    ap.add_argument("--write", action="store_true", help=f"replace RESULTS.md's '{TITLE}'")
    args = ap.parse_args()

    import torch

    from benchmarks._results import machine_line, write_section
    from sos_core.distill.dataset import load_cases, read_manifest, select

    cases = load_cases(select(read_manifest(args.dataset), args.split), args.input_size)
    x = torch.from_numpy(cases.inputs).unsqueeze(1)
    rows = [
        "| model | accuracy % | cross-entropy | head mean abs weight | dead channels % | "
        "pooled feature sd across images | logit sd across images |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for spec in args.models:
        name, _, folder = spec.partition("=")
        m = measure(Path(folder), x, cases.labels)
        rows.append(
            f"| {name} | {100 * m['accuracy']:.1f} | {m['nll']:.3f} | {m['head_weight']:.4f} | "
            f"{100 * m['dead_channels']:.0f} | {m['pooled_std']:.3f} | {m['logit_std']:.3f} |"
        )
    chance = 100 * np.bincount(cases.labels).max() / len(cases.labels)
    head = (
        f"`benchmarks/student_head_state.py`: {machine_line()}; torch {torch.__version__}. "
        f"{len(cases.labels)} {args.split} cases of `{args.dataset.name}` as full images at "
        f"{args.input_size} px; the largest class is {chance:.1f} % of them. "
        "ln 4 = 1.386 is the cross-entropy of a uniform guess."
    )
    reading = args.reading.read_text().strip() if args.reading else ""
    body = "\n\n".join(p for p in (head, args.note.strip(), "\n".join(rows), reading) if p)
    print(body)
    if args.write:
        write_section(TITLE, body)


if __name__ == "__main__":
    main()
