"""Students against their teachers on a large fresh phantom set: how big is the gap, precisely?

The preset's test split has 150 cases per modality, so one accuracy carries about ±3 points of
sampling error (95 %: ±5.7) and a 5-point gap between student and teacher is only a rough figure.
This scores trained models on every case of a freshly generated phantom dataset (another seed,
so no case was seen in training or model selection), per modality, and reports for each seed:

- the teacher on crops of the true box (the issue's reference), and at the student's own
  Grad-CAM peak (the teacher reading where the student looks, the crop a detector-free
  pipeline could give it);
- each student on the full image, at the size its card reads the modality at (with its second
  look if its card has one);
- the student-minus-teacher gap with a 95 % interval from the paired per-case differences.

    python benchmarks/fresh_test.py --data out/fresh7777 \
        --teacher 0=out/preset5/teacher/model --teacher 1=... \
        --student "full method=0=out/preset5/student/model" --student ... [--write --note "..."]
    python benchmarks/fresh_test.py --from-json SCORES.json --write --note "..."   # re-render
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sos_core.distill.dataset import (  # noqa: E402
    LoadedCases,
    crop_batch,
    load_cases,
    read_manifest,
)
from sos_core.distill.evaluation import run_model  # noqa: E402
from sos_core.inference.zoom import ZoomSpec, peak_centres  # noqa: E402
from sos_core.models.model_file import load_model  # noqa: E402

TITLE = "Distillation: the student-teacher gap on a fresh phantom set (CPU)"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson interval of a proportion k / n."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def paired_gap(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean of a - b (per-case 0/1 correctness) and its standard error."""
    d = a.astype(float) - b.astype(float)
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))


def student_correct(
    folder: Path, modality: str, cases_at: Callable[[int], LoadedCases]
) -> tuple[np.ndarray, np.ndarray, LoadedCases]:
    """Per-case correctness of a student on full images at the size its card reads `modality`
    at, its predicted-class maps, and the cases as read (the maps' frame)."""
    model, card = load_model(folder)
    cases = cases_at(card.input_size_for(modality))
    x = torch.from_numpy(cases.inputs).unsqueeze(1)
    logits, cams = run_model(model, x, ZoomSpec.from_preprocessing(card.preprocessing))
    return logits.argmax(1) == cases.labels, cams, cases


def teacher_correct(folder: Path, cases: LoadedCases, centres: np.ndarray | None) -> np.ndarray:
    """Per-case correctness of a teacher on crops: of the true box, or of a box of the true
    box's size centred on `centres` (input pixels, e.g. the student's map peaks)."""
    model, card = load_model(folder)
    boxes = cases.native_boxes.copy()
    if centres is not None:
        for i, ((cx, cy), lb) in enumerate(zip(centres, cases.letterboxes, strict=True)):
            x, y, _, _ = lb.box_to_image((cx, cy, cx, cy))
            w, h = boxes[i, 2] - boxes[i, 0], boxes[i, 3] - boxes[i, 1]
            boxes[i] = (x - w / 2, y - h / 2, x + w / 2, y + h / 2)
    ctx = float(card.preprocessing.get("crop_context", 1.5))
    crops = torch.from_numpy(crop_batch(cases.natives, boxes, card.input_size[0], context=ctx))
    logits, _ = run_model(model, crops.unsqueeze(1))
    return logits.argmax(1) == cases.labels


def _pct(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{100 * k / n:.1f} ({100 * lo:.1f}-{100 * hi:.1f})"


def format_gap(g: tuple[float, float]) -> str:
    """A `paired_gap` in points: '+1.2 ± 0.9' (95 %)."""
    m, se = g
    return f"{100 * m:+.1f} ± {196 * se:.1f}"


def score(
    data: Path, teachers: dict[str, Path], students: list[tuple[str, str, Path]]
) -> dict[str, Any]:
    records = read_manifest(data)
    out: dict[str, Any] = {}
    for modality in ("slice", "ceph"):
        chosen = [r for r in records if r.modality == modality]
        loaded: dict[int, LoadedCases] = {}

        def cases_at(s: int, chosen: list = chosen, loaded: dict = loaded) -> LoadedCases:
            if s not in loaded:
                loaded[s] = load_cases(chosen, s)
            return loaded[s]

        n = len(chosen)
        rows: dict[str, Any] = {"n": n, "teachers": {}, "students": []}
        maps: dict[str, tuple[np.ndarray, LoadedCases]] = {}
        for name, seed, folder in students:
            ok, cams, read = student_correct(folder, modality, cases_at)
            rows["students"].append({"name": name, "seed": seed, "correct": ok})
            if name == students[0][0]:
                maps[seed] = (cams, read)  # the first student named per seed gives the peaks
        for seed, folder in teachers.items():
            peak = None
            if seed in maps:  # the peaks are in the frame of the cases that student read
                cams, read = maps[seed]
                peak = teacher_correct(folder, read, peak_centres(torch.from_numpy(cams)).numpy())
            # A teacher crops the native images: the cases at any loaded size will do.
            truth = teacher_correct(folder, cases_at(min(loaded or [256])), None)
            rows["teachers"][seed] = {"true": truth, "peak": peak}
        out[modality] = rows
        print(f"{modality}: {n} cases scored", flush=True)
    return out


def _row(name: str, correct: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> str:
    """Accuracy per seed with its interval, the mean, and the paired gap to `truth` (teachers)."""
    seeds = list(truth)
    n = len(next(iter(truth.values())))
    cells = [name] + [_pct(int(correct[s].sum()), n) for s in seeds]
    cells.append(f"{100 * np.mean([correct[s].mean() for s in seeds]):.1f}")
    gaps = [paired_gap(correct[s], truth[s]) for s in seeds]
    mean = float(np.mean([g[0] for g in gaps]))
    se = math.sqrt(sum(g[1] ** 2 for g in gaps)) / len(gaps)
    cells.append(f"{format_gap((mean, se))} (per seed {', '.join(format_gap(g) for g in gaps)})")
    return "| " + " | ".join(cells) + " |"


def render(results: dict[str, Any], note: str, reading: str = "") -> str:
    parts = [note.strip()] if note.strip() else []
    for modality, label in (("slice", "Mid-sagittal slices"), ("ceph", "Cephalograms")):
        rows = results[modality]
        n = rows["n"]
        seeds = list(rows["teachers"])
        head = "| model | " + " | ".join(f"seed {s} % (95 % CI)" for s in seeds)
        head += " | mean % | minus teacher on true crops, mean ± 95 % |"
        lines = [f"**{label}** ({n} cases)", "", head, "|" + " --- |" * (len(seeds) + 3)]

        truth = {s: rows["teachers"][s]["true"] for s in seeds}
        lines.append(_row("teacher on crops of the true box", truth, truth))
        if all(rows["teachers"][s]["peak"] is not None for s in seeds):
            peak = {s: rows["teachers"][s]["peak"] for s in seeds}
            lines.append(_row("teacher on crops at the student's Grad-CAM peak", peak, truth))
        names = list(dict.fromkeys(st["name"] for st in rows["students"]))
        for name in names:
            correct = {st["seed"]: st["correct"] for st in rows["students"] if st["name"] == name}
            if set(correct) == set(seeds):
                lines.append(_row(name, correct, truth))
        parts.append("\n".join(lines))
    if reading.strip():
        parts.append(reading.strip())
    return "\n\n".join(parts)


def from_plain(data: dict[str, Any]) -> dict[str, Any]:
    """Scores as saved by --json (0/1 lists) back into boolean arrays."""

    def arr(v: list[int] | None) -> np.ndarray | None:
        return None if v is None else np.asarray(v, dtype=bool)

    for rows in data.values():
        for t in rows["teachers"].values():
            t["true"], t["peak"] = arr(t["true"]), arr(t["peak"])
        for st in rows["students"]:
            st["correct"] = arr(st["correct"])
    return data


def breakdown(results: dict[str, Any], data: Path) -> str:
    """Where the gap lies: teacher (true crops) and the first student row, mean over seeds, by
    stage and by thirds of the SOS box's size in the image."""
    records = read_manifest(data)
    parts = []
    for modality, label in (("slice", "slices"), ("ceph", "cephalograms")):
        rows = results[modality]
        recs = [r for r in records if r.modality == modality]
        seeds = list(rows["teachers"])
        first = rows["students"][0]["name"]
        teacher = np.mean([rows["teachers"][s]["true"] for s in seeds], axis=0)
        student = np.mean([st["correct"] for st in rows["students"] if st["name"] == first], axis=0)
        stage = np.array([r.stage for r in recs])
        side = np.array([max(r.box[2] - r.box[0], r.box[3] - r.box[1]) for r in recs])
        cuts = np.quantile(side, [1 / 3, 2 / 3])
        third = np.digitize(side, cuts)
        groups = [(f"stage {k}", stage == k) for k in range(int(stage.max()) + 1)]
        groups += [
            (f"box side {side[third == k].min():.1f}-{side[third == k].max():.1f} px", third == k)
            for k in range(3)
        ]
        lines = [
            f"Where the gap lies on {label} ({first}, mean over seeds):",
            "",
            "| cases | n | teacher on true crops % | student % | student minus teacher |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for name, m in groups:
            t, st = 100 * teacher[m].mean(), 100 * student[m].mean()
            lines.append(f"| {name} | {int(m.sum())} | {t:.1f} | {st:.1f} | {st - t:+.1f} |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Scores of the same dataset from several runs (e.g. one seed each) as one."""
    out = parts[0]
    for part in parts[1:]:
        for modality, rows in part.items():
            if rows["n"] != out[modality]["n"]:
                raise SystemExit("the score files are of different datasets")
            out[modality]["teachers"].update(rows["teachers"])
            out[modality]["students"].extend(rows["students"])
    return out


def _pairs(values: list[str]) -> list[tuple[str, ...]]:
    return [tuple(v.split("=")) for v in values]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path)
    ap.add_argument("--teacher", action="append", metavar="SEED=FOLDER")
    ap.add_argument("--student", action="append", metavar="NAME=SEED=FOLDER")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--note", default="")
    ap.add_argument("--reading", type=Path, help="a hand-written reading to put under the tables")
    ap.add_argument("--json", type=Path, help="also write the per-case correctness here")
    ap.add_argument("--write", action="store_true", help="replace RESULTS.md's --title section")
    ap.add_argument(
        "--from-json",
        type=Path,
        nargs="+",
        help="render saved --json scores (several: their seeds merged); score nothing",
    )
    ap.add_argument("--title", default=TITLE, help="the RESULTS.md section to write")
    args = ap.parse_args()
    if args.from_json:
        results = merge([from_plain(json.loads(p.read_text())) for p in args.from_json])
        body = render(results, args.note)
        if args.data:  # the dataset's manifest gives stages and box sizes
            body += "\n\n" + breakdown(results, args.data)
        if args.reading:
            body += "\n\n" + args.reading.read_text().strip()
        print(body)
        if args.write:
            from benchmarks._results import write_section

            write_section(args.title, body)
        return
    if not (args.data and args.teacher and args.student):
        ap.error("--data, --teacher and --student are needed unless --from-json is given")
    torch.set_num_threads(args.threads)
    teachers = {seed: Path(folder) for seed, folder in _pairs(args.teacher)}
    students = [(name, seed, Path(folder)) for name, seed, folder in _pairs(args.student)]
    results = score(args.data, teachers, students)
    if args.json:

        def plain(v: Any) -> Any:
            if isinstance(v, np.ndarray):
                return v.astype(int).tolist()
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            if isinstance(v, list):
                return [plain(x) for x in v]
            return v

        args.json.write_text(json.dumps(plain(results)))
    body = render(results, args.note, args.reading.read_text() if args.reading else "")
    print(body)
    if args.write:
        from benchmarks._results import write_section

        write_section(args.title, body)


if __name__ == "__main__":
    main()
