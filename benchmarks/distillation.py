"""The paper's central comparison, reproduced on the phantom.

Teacher on expert crops; student with L_cls only; with L_cls + L_dist; with all three terms
(L_cls + L_dist + L_attn, plus the outside-box penalty) — over several seeds, on one phantom
dataset with a held-out test split. Prints a Markdown table (mean ± sd over seeds) and writes
it to benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/distillation.py --count 1000 --seeds 0 1 2 --scratch

On a GPU, one process per seed shares the card, each writing its own JSON, then merge:

    python benchmarks/distillation.py --device cuda --seeds 0 --results out/s0.json ... &
    python benchmarks/distillation.py --merge out/s0.json out/s1.json out/s2.json
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._results import machine_line, write_section  # noqa: E402
from sos_core.distill.config import config_from_dict  # noqa: E402
from sos_core.distill.evaluation import evaluate_model_dir  # noqa: E402
from sos_core.distill.training import train  # noqa: E402
from sos_core.models.flops import count_flops  # noqa: E402
from sos_core.models.registry import create_model  # noqa: E402

CLS_ONLY = "student, L_cls only"
CLS_DIST = "student, L_cls + L_dist"
FULL = "student, L_cls + L_dist + L_attn (full method)"
VARIANTS = {
    CLS_ONLY: {"cls": 1.0, "dist": 0.0, "attn": 0.0, "outside": 0.0},
    CLS_DIST: {"cls": 1.0, "dist": 1.0, "attn": 0.0, "outside": 0.0},
    FULL: {
        "cls": 1.0,
        "dist": 1.0,
        "attn": 2.0,
        "outside": 0.5,
    },
}
# Without the crop warm-up the student sees no box at all except through L_attn: the paper's
# own setting, and the only one where L_cls only is a baseline that never saw an expert crop.
SCRATCH = "student, full method, no warm-up (from scratch)"
SCRATCH_CLS = "student, L_cls only, no warm-up (from scratch)"
# Short names for --rows: (row, loss weights, starts from the crop warm-up).
ROWS = {
    "full": (FULL, VARIANTS[FULL], True),
    "cls": (CLS_ONLY, VARIANTS[CLS_ONLY], True),
    "cls-dist": (CLS_DIST, VARIANTS[CLS_DIST], True),
    "scratch-full": (SCRATCH, VARIANTS[FULL], False),
    "scratch-cls": (SCRATCH_CLS, VARIANTS[CLS_ONLY], False),
}
TITLE = "Distillation: the paper's table on the phantom"
METRICS = ("accuracy", "f1_macro", "kappa_quadratic", "ece", "pointing_game")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1000, help="phantom cases (70/15/15 split)")
    ap.add_argument("--modality", default="slice")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=12, help="teacher and warm-up epochs")
    ap.add_argument(
        "--warmup-epochs", type=int, help="student warm-up on crops (default: --epochs)"
    )
    ap.add_argument("--student-epochs", type=int, default=6)
    ap.add_argument("--student-patience", type=int, default=3)
    ap.add_argument("--scratch", action="store_true", help="add the from-scratch row")
    ap.add_argument(
        "--rows",
        nargs="+",
        choices=list(ROWS),
        help="student rows to run, in this order (default: full cls cls-dist [scratch-full])",
    )
    ap.add_argument("--section", default=TITLE, help="RESULTS.md section to write")
    ap.add_argument("--input-size", type=int, default=256)
    ap.add_argument("--student-width", type=float, default=1.0)
    ap.add_argument("--work", default="out/bench-distill")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, auto (training device)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    ap.add_argument("--results", help="JSON file for this run's rows (default WORK/results.json)")
    ap.add_argument("--workers", type=int, default=2, help="processes generating the phantom")
    ap.add_argument("--generate-only", action="store_true", help="make the dataset, then stop")
    ap.add_argument("--merge", nargs="+", metavar="JSON", help="only merge runs' JSON files")
    ap.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = ap.parse_args()
    if args.merge:
        merge(args)
        return
    import torch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    from sos_core.phantom.dataset import DatasetConfig, generate_dataset

    work = Path(args.work)
    data = work / f"data-{args.modality}-{args.count}"
    if not (data / "manifest.jsonl").is_file():
        cfg = DatasetConfig(
            count=args.count, modalities=(args.modality,), seed=4242, workers=args.workers
        )
        generate_dataset(cfg, data, force=True)
    if args.generate_only:
        return
    # The full method, then L_cls only: the comparison that matters most if a run is cut
    # short; then L_cls + L_dist, then (--scratch) the full method without the warm-up.
    if not args.rows:
        args.rows = ["full", "cls", "cls-dist"] + (["scratch-full"] if args.scratch else [])
    rows: dict[str, list[dict]] = {"teacher on crops": []}
    rows.update({ROWS[k][0]: [] for k in args.rows})
    seconds: dict[str, list[float]] = {k: [] for k in rows}
    results = Path(args.results) if args.results else work / "results.json"
    where = f"{machine_line()}; training on {device_line(args.device)}"
    command = shlex.join(sys.argv)
    common = {
        "dataset": str(data),
        "modalities": [args.modality],
        "device": args.device,
        "crop_size": 64,
        "crop_context": 1.5,
        "epochs": args.epochs,
        "patience": 6,
    }
    for seed in args.seeds:
        t0 = time.time()
        teacher = train(
            config_from_dict(
                {
                    "kind": "teacher",
                    "out": str(work / f"s{seed}/teacher"),
                    "seed": seed,
                    "model": {"key": "teacher", "kwargs": {"width": 0.75}},
                    "batch_size": 64,
                    "version": f"bench-teacher-{seed}",
                    **common,
                }
            ),
            resume=True,
        )
        seconds["teacher on crops"].append(time.time() - t0)
        rows["teacher on crops"].append(evaluate_model_dir(teacher.model_dir, data)[0]["metrics"])
        t0 = time.time()
        warmup = None
        if any(ROWS[k][2] for k in args.rows):
            warmup = train(
                config_from_dict(
                    {
                        "kind": "teacher",
                        "out": str(work / f"s{seed}/student-warmup"),
                        "seed": seed,
                        "model": {"key": "student", "kwargs": {"width": args.student_width}},
                        "batch_size": 64,
                        "version": f"bench-warmup-{seed}",
                        **{
                            **common,
                            "crop_context": 2.7,
                            "epochs": _warmup_epochs(args),
                            # No early stop: a warm-up can sit at chance for several epochs
                            # before it finds the gap (seed 2 here: five epochs).
                            "patience": _warmup_epochs(args),
                        },
                    }
                ),
                resume=True,
            )
        warmup_seconds = time.time() - t0
        for key in args.rows:
            name, loss, warm = ROWS[key]
            i = list(ROWS).index(key)  # the folder numbers of runs made before --rows
            t0 = time.time()
            student = train(
                config_from_dict(
                    {
                        "kind": "student",
                        "out": str(work / f"s{seed}/student-{i}"),
                        "seed": seed,
                        "teacher": str(teacher.model_dir),
                        "input_size": args.input_size,
                        "model": {"key": "student", "kwargs": {"width": args.student_width}},
                        "batch_size": 32,
                        "loss": {**loss, "temperature": 3.0},
                        "version": f"bench-student{i}-{seed}",
                        "init_from": str(warmup.model_dir) if warm and warmup else None,
                        **{
                            **common,
                            "epochs": args.student_epochs,
                            "patience": args.student_patience,
                        },
                    }
                ),
                resume=True,
            )
            seconds[name].append(time.time() - t0 + (warmup_seconds if warm else 0.0))
            rows[name].append(evaluate_model_dir(student.model_dir, data)[0]["metrics"])
            print(name, seed, {m: round(rows[name][-1][m], 4) for m in METRICS}, flush=True)
            # Written after every run so that a benchmark cut short still leaves its figures.
            run = {"rows": rows, "seconds": seconds, "where": where, "argv": sys.argv}
            results.write_text(json.dumps({**run, "args": vars(args)}, indent=1))
            table = render(rows, seconds, args, args.seeds, where, [command])
            if not args.no_write:
                write_section(args.section, table)
    print(render(rows, seconds, args, args.seeds, where, [command]))


def _warmup_epochs(args: argparse.Namespace) -> int:
    # Runs saved before the option existed have no such key: their warm-up had --epochs.
    return getattr(args, "warmup_epochs", None) or args.epochs


def device_line(device: str) -> str:
    import torch

    from sos_core.device import choose_device

    chosen = choose_device(device)
    name = torch.cuda.get_device_name(chosen) if chosen.type == "cuda" else "CPU"
    return f"{chosen} ({name}), torch {torch.__version__}, Python {platform.python_version()}"


def merge(args: argparse.Namespace) -> None:
    """One table from several runs' JSON files (one per seed, say), in the order given."""
    runs = [json.loads(Path(f).read_text(encoding="utf-8")) for f in args.merge]
    rows: dict[str, list[dict]] = {}
    seconds: dict[str, list[float]] = {}
    seeds: list[int] = []
    for run in runs:
        n = len(run["args"]["seeds"])
        for name, values in run["rows"].items():
            # A run cut short has fewer results than seeds: pad, so each keeps its seed column.
            rows.setdefault(name, []).extend(values + [None] * (n - len(values)))
            seconds.setdefault(name, []).extend(run["seconds"][name])
        seeds += run["args"]["seeds"]
    first = argparse.Namespace(**runs[0]["args"])
    commands = [shlex.join(r["argv"]) for r in runs]
    table = render(rows, seconds, first, seeds, runs[0]["where"], commands)
    print(table)
    if not args.no_write:
        write_section(args.section, table)


def _fmt(values: list[float], pct: bool) -> str:
    v = np.asarray(values) * (100 if pct else 1)
    return f"{v.mean():.1f} ± {v.std():.1f}" if pct else f"{v.mean():.3f} ± {v.std():.3f}"


def render(
    rows: dict[str, list[dict]],
    seconds: dict[str, list[float]],
    args: argparse.Namespace,
    seeds: list[int],
    where: str,
    commands: list[str],
) -> str:
    s_flops = count_flops(
        create_model("student", width=args.student_width), (1, 1, args.input_size, args.input_size)
    )
    t_flops = count_flops(create_model("teacher", width=0.75), (1, 1, 64, 64))
    done = seeds[: len(rows["teacher on crops"])]
    lines = [
        f"Run: {'; '.join(f'`{c}`' for c in commands)} — {where}.",
        "",
        f"Phantom `{args.modality}` dataset of {args.count} cases (70/15/15 split), test split "
        f"held out; {len(done)} of {len(seeds)} seeds done ({', '.join(map(str, done))}), "
        "mean ± sd; "
        f"teacher up to {args.epochs} epochs, students up to {args.student_epochs}, early "
        "stopping on validation; temperature fitted on validation. Teacher on crops of the true "
        f"SOS box (64 px, 1.5x context, {t_flops / 1e9:.2f} GFLOP); students on the full "
        f"{args.input_size} px image ({s_flops / 1e9:.2f} GFLOP), each (but the from-scratch "
        f"rows) starting from the same warm-up on 64 px crops at about 1:1 scale "
        f"(2.7x context, up to {_warmup_epochs(args)} epochs, its time included in the "
        "students' time).",
        "",
        "| model | accuracy % | macro-F1 % | QWK | ECE | pointing game % | train time (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, per_seed in rows.items():
        results = [r for r in per_seed if r is not None]
        if not results:
            continue
        col = {m: [r[m] for r in results] for m in METRICS}
        lines.append(
            f"| {name} (n={len(results)}) | {_fmt(col['accuracy'], True)} | "
            f"{_fmt(col['f1_macro'], True)} | "
            f"{_fmt(col['kappa_quadratic'], False)} | {_fmt(col['ece'], False)} | "
            f"{_fmt(col['pointing_game'], True)} | {np.mean(seconds[name]):.0f} |"
        )
    lines += ["", "Per seed (accuracy % / pointing game %):", ""]
    lines.append("| model | " + " | ".join(f"seed {s}" for s in done) + " |")
    lines.append("| --- | " + " | ".join("---:" for _ in done) + " |")
    for name, per_seed in rows.items():
        cells = [
            f"{r['accuracy'] * 100:.1f} / {r['pointing_game'] * 100:.0f}" if r else "-"
            for r in per_seed
        ]
        cells += ["-"] * (len(done) - len(cells))
        if any(per_seed):
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
