"""The shipped recipe over several seeds, by loss: full method, L_cls + L_dist, L_cls only.

Reads the test summaries that `sos train --preset default` (WORK/summary.json) and
`benchmarks/preset_variants.py` (WORK/VARIANT/result.json) write, one per seed and student loss
(--cls-dist and --attention-transfer are optional), and renders one table with mean ± sd
(population sd, as in the distillation table) and one row per seed, plus the issue's targets
for the full-method student.

    python benchmarks/shipped_seeds.py --full out/preset5/summary.json \
        out/pv6/shipped-seed1/result.json out/pv7/shipped-seed2/result.json \
        --cls-only out/pv6/shipped-cls-only/result.json \
        out/pv7/shipped-cls-only-seed1/result.json out/pv7/shipped-cls-only-seed2/result.json \
        --cls-dist out/pv8/shipped-cls-dist/result.json \
        out/pv8/shipped-cls-dist-seed1/result.json out/pv8/shipped-cls-dist-seed2/result.json \
        --attention-transfer out/pv11/shipped-at/result.json \
        out/pv11/shipped-at-seed1/result.json out/pv11/shipped-at-seed2/result.json \
        --note "how the runs were made"

Seeds are taken in the order given (the first file is seed 0).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TITLE = "Distillation: the shipped recipe over three seeds, by loss term (CPU)"
MODALITIES = ("slice", "ceph", "all")


def load_summary(path: Path) -> dict[str, Any]:
    """A preset's summary.json, or a preset variant's result.json (which wraps one)."""
    data = json.loads(path.read_text())
    return data.get("test", data)


def _pm(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    v = np.asarray(values, dtype=float) * scale
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}"


def _acc(summary: dict[str, Any], role: str, modality: str) -> float:
    return float(summary[role][modality]["accuracy"])


Runs = list[dict[str, Any]]


AT_NAME = "L_cls + L_dist + attention transfer"


def table(full: Runs, cls_only: Runs, cls_dist: Runs | None = None, at: Runs | None = None) -> str:
    rows = [
        ("teacher on crops (of the full-method seeds)", full, "teacher"),
        ("student, full method (shipped recipe)", full, "student"),
        (f"student, {AT_NAME} (same teacher and warm-up)", at, "student"),
        ("student, L_cls + L_dist (same teacher and warm-up)", cls_dist, "student"),
        ("student, L_cls only (same teacher and warm-up)", cls_only, "student"),
    ]
    return accuracy_table([row for row in rows if row[1]])  # AT and L_cls + L_dist optional


def accuracy_table(rows: list[tuple[str, Runs | None, str]]) -> str:
    """One line per (name, runs, role): accuracy per modality, QWK, ECE, pointing game."""
    head = (
        "| model | seeds | slices % | cephalograms % | both % | QWK | ECE | pointing game % |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    lines = [head]
    for name, runs, role in rows:
        assert runs is not None
        cells = [name, str(len(runs))]
        cells += [_pm([_acc(s, role, m) for s in runs]) for m in MODALITIES]
        whole = [s[role]["all"] for s in runs]
        cells.append(_pm([w["kappa_quadratic"] for w in whole], 1.0, 3))
        cells.append(_pm([w["ece"] for w in whole], 1.0, 3))
        cells.append(_pm([w["pointing_game"] for w in whole], 100.0, 1))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_seed(
    full: Runs, cls_only: Runs, cls_dist: Runs | None = None, at: Runs | None = None
) -> str:
    losses = [
        ("full", full),
        ("attention transfer", at),
        ("L_cls + L_dist", cls_dist),
        ("L_cls only", cls_only),
    ]
    losses = [(name, runs) for name, runs in losses if runs]
    head = (
        "| seed | teacher slices / cephs % | "
        + " | ".join(f"{n} slices / cephs %" for n, _ in losses)
        + " | "
        + " | ".join(f"{n} pointing %" for n, _ in losses)
        + " |\n| ---: | --- | "
        + " | ".join("---" for _ in losses)
        + " | "
        + " | ".join("---:" for _ in losses)
        + " |"
    )

    def pair(s: dict[str, Any], role: str) -> str:
        return " / ".join(f"{100 * _acc(s, role, m):.1f}" for m in ("slice", "ceph"))

    def point(s: dict[str, Any]) -> str:
        return f"{100 * s['student']['all']['pointing_game']:.0f}"

    lines = [head]
    for seed, runs in enumerate(zip(*(r for _, r in losses), strict=True)):
        cells = [str(seed), pair(runs[0], "teacher")]
        cells += [pair(r, "student") for r in runs] + [point(r) for r in runs]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets(
    full: Runs, cls_only: Runs, cls_dist: Runs | None = None, at: Runs | None = None
) -> str:
    """The issue's targets for the full-method student, read seed by seed and on the mean."""

    def gaps(a: Runs, ra: str, b: Runs, rb: str, m: str) -> list[float]:
        return [100 * (_acc(x, ra, m) - _acc(y, rb, m)) for x, y in zip(a, b, strict=True)]

    out = []
    for m, label in (("slice", "slices"), ("ceph", "cephalograms"), ("all", "both")):
        to_teacher = gaps(full, "student", full, "teacher", m)
        over_cls = gaps(full, "student", cls_only, "student", m)
        out.append(
            f"- {label}: student minus its teacher "
            f"{', '.join(f'{g:+.1f}' for g in to_teacher)} (mean {np.mean(to_teacher):+.1f}; "
            f"target ≥ -2.0); full method minus L_cls only "
            f"{', '.join(f'{g:+.1f}' for g in over_cls)} (mean {np.mean(over_cls):+.1f}; "
            "target ≥ +10.0)"
        )
        if cls_dist:
            over_dist = gaps(full, "student", cls_dist, "student", m)
            out[-1] += (
                f"; full method minus L_cls + L_dist "
                f"{', '.join(f'{g:+.1f}' for g in over_dist)} (mean {np.mean(over_dist):+.1f})"
            )
        if at:
            over_at = gaps(full, "student", at, "student", m)
            out[-1] += (
                f"; full method minus {AT_NAME} "
                f"{', '.join(f'{g:+.1f}' for g in over_at)} (mean {np.mean(over_at):+.1f})"
            )
    pointing = [s["student"]["all"]["pointing_game"] for s in full]
    ece = [s["student"]["all"]["ece"] for s in full]
    out.append(
        f"- pointing game {', '.join(f'{100 * p:.0f}' for p in pointing)} % (target ≥ 95); "
        f"ECE {', '.join(f'{e:.3f}' for e in ece)} (target ≤ 0.05)"
    )
    return "\n".join(out)


def render(
    full_paths: list[Path],
    cls_paths: list[Path],
    note: str,
    reading: str = "",
    dist_paths: list[Path] | None = None,
    at_paths: list[Path] | None = None,
) -> str:
    full = [load_summary(p) for p in full_paths]
    cls_only = [load_summary(p) for p in cls_paths]
    cls_dist = [load_summary(p) for p in dist_paths] if dist_paths else None
    at = [load_summary(p) for p in at_paths] if at_paths else None
    return "\n\n".join(
        part
        for part in (
            note.strip(),
            table(full, cls_only, cls_dist, at),
            "Per seed, accuracy on the test split (150 cases per modality):",
            per_seed(full, cls_only, cls_dist, at),
            "The issue's targets for the full-method student, seed by seed (percentage points):",
            targets(full, cls_only, cls_dist, at),
            reading.strip(),
        )
        if part
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", type=Path, nargs="+", required=True, help="one summary per seed")
    ap.add_argument("--cls-only", type=Path, nargs="+", required=True, help="one per seed")
    ap.add_argument("--cls-dist", type=Path, nargs="+", help="L_cls + L_dist, one per seed")
    ap.add_argument(
        "--attention-transfer", type=Path, nargs="+", help="the AT baseline, one per seed"
    )
    ap.add_argument("--note", default="", help="how and where the runs were made")
    ap.add_argument("--reading", type=Path, help="a hand-written reading to put under the table")
    ap.add_argument("--write", action="store_true", help=f"replace RESULTS.md's '{TITLE}'")
    args = ap.parse_args()
    optional = (args.cls_dist or args.full, args.attention_transfer or args.full)
    if len(args.full) != len(args.cls_only) or any(len(o) != len(args.full) for o in optional):
        ap.error("give one summary per seed for each loss, in the same seed order")
    reading = args.reading.read_text() if args.reading else ""
    body = render(
        args.full, args.cls_only, args.note, reading, args.cls_dist, args.attention_transfer
    )
    print(body)
    if args.write:
        from benchmarks._results import write_section

        write_section(TITLE, body)


if __name__ == "__main__":
    main()
