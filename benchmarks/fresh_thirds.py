"""Per seed, each student's gap to its teacher on fresh cephalograms, by thirds of the SOS box side.

Reads every saved `fresh_test.py --json` score file in benchmarks/runs/fresh-test-cpu-2026-12-07
(teachers and students by seed) and the fresh dataset's manifest for the box sizes; prints one
line per student name: student minus teacher (points) in the smallest, middle and largest third,
and the student minus the shipped 3.0 student on the same cases (mean ± 95 %, per seed).
`fresh_test.py --data` gives the same breakdown as a mean over seeds for one student only.

    .venv/bin/python benchmarks/fresh_thirds.py --data out/fresh7777
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fresh_test import format_gap, paired_gap  # noqa: E402 - benchmarks/ is on sys.path

from sos_core.distill.dataset import read_manifest  # noqa: E402

SHIPPED = "student 3.0 (full method)"
RUNS = ROOT / "benchmarks" / "runs" / "fresh-test-cpu-2026-12-07"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    args = ap.parse_args()
    recs = [r for r in read_manifest(args.data) if r.modality == "ceph"]
    side = np.array([max(r.box[2] - r.box[0], r.box[3] - r.box[1]) for r in recs])
    third = np.digitize(side, np.quantile(side, [1 / 3, 2 / 3]))
    teachers: dict[str, np.ndarray] = {}
    rows: dict[str, dict[str, np.ndarray]] = {}
    for f in sorted(RUNS.glob("*.json")):
        d = json.loads(f.read_text())["ceph"]
        for s, t in d["teachers"].items():
            teachers[s] = np.array(t["true"], bool)
        for st in d["students"]:
            rows.setdefault(st["name"], {})[st["seed"]] = np.array(st["correct"], bool)
    for name, seeds in rows.items():
        parts = []
        for k, label in enumerate(("smallest", "middle", "largest")):
            m = third == k
            gaps = (100 * (v[m].mean() - teachers[s][m].mean()) for s, v in sorted(seeds.items()))
            parts.append(f"{label} " + " / ".join(f"{g:+.1f}" for g in gaps))
        paired = []
        for s, v in sorted(seeds.items()):
            paired.append(format_gap(paired_gap(v, rows[SHIPPED][s])))
        parts.append("minus 3.0, paired " + " / ".join(paired))
        print(f"{name} (seeds {', '.join(sorted(seeds))}): " + "; ".join(parts))


if __name__ == "__main__":
    main()
