"""One calibration temperature for both modalities, or one per modality?

Fits a temperature per modality on the validation split and compares the test ECE with the
model card's single temperature (and with none). Writes the section "Calibration: one
temperature or one per modality" of benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/calibration_per_modality.py --dataset out/pv/data
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._results import machine_line, write_section  # noqa: E402
from sos_core.distill.dataset import load_cases, read_manifest, select  # noqa: E402
from sos_core.distill.evaluation import run_model  # noqa: E402
from sos_core.distill.metrics import expected_calibration_error, fit_temperature  # noqa: E402
from sos_core.models.model_file import load_model  # noqa: E402

TITLE = "Calibration: one temperature or one per modality"


def _softmax(logits: np.ndarray, t: float) -> np.ndarray:
    z = logits / t
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True, help="the preset's phantom dataset")
    ap.add_argument("--model", default="resources/models/student")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    model, card = load_model(args.model)
    out: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    for split in ("val", "test"):
        for mod in card.modalities:
            cases = load_cases(select(read_manifest(args.dataset), split, (mod,)), 256)
            logits, _ = run_model(model, torch.from_numpy(cases.inputs).unsqueeze(1))
            out[split, mod] = (logits, cases.labels)
    fitted = {m: float(fit_temperature(*out["val", m])) for m in card.modalities}
    lines = [
        f"Run: `{' '.join(sys.argv)}` — {machine_line()}.",
        "",
        f"Model `{card.version}` (card temperature {card.temperature:.3f}, fitted on the "
        "validation split of both modalities); per-modality temperatures fitted on each "
        "modality's validation split; ECE (15 bins) on the test split.",
        "",
        "| modality | test cases | ECE, card temperature | ECE, per-modality temperature | "
        "ECE, no temperature |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for mod in card.modalities:
        logits, labels = out["test", mod]
        e = [
            expected_calibration_error(_softmax(logits, t), labels)
            for t in (card.temperature, fitted[mod], 1.0)
        ]
        lines.append(
            f"| {mod} | {len(labels)} | {e[0]:.3f} | {e[1]:.3f} (T {fitted[mod]:.2f}) | "
            f"{e[2]:.3f} |"
        )
    mods = card.modalities
    labels = np.concatenate([out["test", m][1] for m in mods])
    shared = np.concatenate([_softmax(out["test", m][0], card.temperature) for m in mods])
    own = np.concatenate([_softmax(out["test", m][0], fitted[m]) for m in mods])
    lines.append(
        f"| all | {len(labels)} | {expected_calibration_error(shared, labels):.3f} | "
        f"{expected_calibration_error(own, labels):.3f} | - |"
    )
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(TITLE, text)


if __name__ == "__main__":
    main()
