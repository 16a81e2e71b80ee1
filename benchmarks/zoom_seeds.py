"""The student's second look over three seeds, against the same seed's 3.0 student and teacher.

Reads test summaries (a preset's summary.json or a preset variant's result.json) for, per seed:
the full-method 3.0 student (its teacher comes from the same file), the student fine-tuned with
the second look (`shipped-zoom*`), optionally the same fine-tuning without it (a control, not run
so far: a `student_zoom` stage with zoom_weight 0) and the L_cls-only student (for the issue's
"10 points above" target). Renders one
table (mean ± population sd), one row per seed and the issue's targets for the shipped student.

    python benchmarks/zoom_seeds.py \
        --base out/preset5/summary.json out/pv6/shipped-seed1/result.json \
            out/pv7/shipped-seed2/result.json \
        --zoom out/pv9/shipped-zoom/result.json out/pv9/shipped-zoom-seed1/result.json \
            out/pv9/shipped-zoom-seed2/result.json \
        --cls-only out/pv6/shipped-cls-only/result.json ... --note "..." [--write]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.shipped_seeds import _acc, accuracy_table, load_summary  # noqa: E402

TITLE = "Distillation: the student's second look over three seeds (CPU)"
Runs = list[dict[str, Any]]


def per_seed(rows: list[tuple[str, Runs, str]]) -> str:
    head = (
        "| seed | "
        + " | ".join(f"{name} slices / cephs %" for name, _, _ in rows)
        + " |\n| ---: | "
        + " | ".join("---" for _ in rows)
        + " |"
    )
    lines = [head]
    for seed, runs in enumerate(zip(*(r for _, r, _ in rows), strict=True)):
        cells = [str(seed)]
        for (_, _, role), s in zip(rows, runs, strict=True):
            cells.append(" / ".join(f"{100 * _acc(s, role, m):.1f}" for m in ("slice", "ceph")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets(base: Runs, zoom: Runs, cls_only: Runs | None, control: Runs | None) -> str:
    """The issue's targets for the student with the second look; teachers from `base`."""

    def gaps(a: Runs, ra: str, b: Runs, rb: str, m: str) -> list[float]:
        return [100 * (_acc(x, ra, m) - _acc(y, rb, m)) for x, y in zip(a, b, strict=True)]

    def fmt(values: list[float]) -> str:
        return f"{', '.join(f'{g:+.1f}' for g in values)} (mean {np.mean(values):+.1f})"

    out = []
    for m, label in (("slice", "slices"), ("ceph", "cephalograms"), ("all", "both")):
        parts = [
            f"student minus its teacher {fmt(gaps(zoom, 'student', base, 'teacher', m))}, "
            "target ≥ -2.0",
            f"minus the 3.0 student {fmt(gaps(zoom, 'student', base, 'student', m))}",
        ]
        if control:
            parts.append(f"minus the control {fmt(gaps(zoom, 'student', control, 'student', m))}")
        if cls_only:
            parts.append(
                f"minus L_cls only {fmt(gaps(zoom, 'student', cls_only, 'student', m))}, "
                "target ≥ +10.0"
            )
        out.append(f"- {label}: " + "; ".join(parts))
    pointing = [s["student"]["all"]["pointing_game"] for s in zoom]
    ece = [s["student"]["all"]["ece"] for s in zoom]
    out.append(
        f"- pointing game {', '.join(f'{100 * p:.0f}' for p in pointing)} % (target ≥ 95); "
        f"ECE {', '.join(f'{e:.3f}' for e in ece)} (target ≤ 0.05)"
    )
    return "\n".join(out)


def render(
    base: Runs, zoom: Runs, control: Runs | None, cls_only: Runs | None, note: str, reading: str
) -> str:
    rows = [
        ("teacher on crops", base, "teacher"),
        ("student 3.0 (full method, one reading)", base, "student"),
    ]
    if control:
        rows.append(
            ("the same + 4 epochs fine-tuning, no second look (control)", control, "student")
        )
    rows.append(("the same + 4 epochs with the second look (not shipped)", zoom, "student"))
    return "\n\n".join(
        part
        for part in (
            note.strip(),
            accuracy_table(rows),
            "Per seed, accuracy on the test split (150 cases per modality):",
            per_seed(rows),
            "The issue's targets for the student with the second look, seed by seed "
            "(percentage points):",
            targets(base, zoom, cls_only, control),
            reading.strip(),
        )
        if part
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, nargs="+", required=True, help="3.0 runs, one per seed")
    ap.add_argument("--zoom", type=Path, nargs="+", required=True, help="second look, per seed")
    ap.add_argument("--control", type=Path, nargs="+", help="fine-tuned without it, per seed")
    ap.add_argument("--cls-only", type=Path, nargs="+", help="L_cls-only students, per seed")
    ap.add_argument("--note", default="", help="how and where the runs were made")
    ap.add_argument("--reading", type=Path, help="a hand-written reading to put under the table")
    ap.add_argument("--write", action="store_true", help=f"replace RESULTS.md's '{TITLE}'")
    args = ap.parse_args()
    n = len(args.base)
    if any(len(p) != n for p in (args.zoom, args.control or args.base, args.cls_only or args.base)):
        ap.error("give one summary per seed for each row, in the same seed order")

    def load(paths: list[Path] | None) -> Runs | None:
        return [load_summary(p) for p in paths] if paths else None

    reading = args.reading.read_text() if args.reading else ""
    body = render(
        load(args.base) or [],
        load(args.zoom) or [],
        load(args.control),
        load(args.cls_only),
        args.note,
        reading,
    )
    print(body)
    if args.write:
        from benchmarks._results import write_section

        write_section(TITLE, body)


if __name__ == "__main__":
    main()
