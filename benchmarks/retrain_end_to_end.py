"""Controlled retraining end to end with the shipped models, run the way a user runs it.

In a fresh folder: render phantom slices (seed 7, not the training preset's 2025) in three
disjoint parts; `sos registry locked --import` sets up a new review store with the first part as
its locked validation set; `sos registry list` seeds the registry with the shipped student and
teacher (resources/models). Then, each through the real `sos` CLI as a subprocess:

1. `sos retrain` with nothing queued must say there is nothing to learn (exit 0);
2. the second part is queued as expert labels (`import_labelled_dataset`, the store API the app
   uses) and `sos retrain --json` decides on the locked set, with the CLI's default settings;
3. the third part is queued with every stage shifted by +2 (mod 4), a deliberately wrong
   expert, and `sos retrain --json` must reject that candidate, keep it with its report, and
   leave the active model alone.

A rejected run is retried once on the same queue with a gentler `--lr` (`--retry-lr`), as a
user might. Finally `sos registry rollback` is repeated until the shipped model is active
again, and after each step the active model's probabilities on the locked cases (through
`Predictor`, on the folder the registry names) must equal, bit for bit, those measured when
that version was active before.

Epochs are the CLI defaults unless given. Writes the section "Retraining: end to end with the
shipped models" of benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/retrain_end_to_end.py [--locked 60 --labels 20 --threads 2]

About 4 minutes on 2 quiet CPU cores (each run under a minute), several times that under load.
`--work DIR` keeps the store and `DIR/result.json`; `--render DIR/result.json [MORE ...]`
rewrites the section from saved runs (the others listed as repeats) without training again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._results import machine_line, write_section  # noqa: E402

TITLE = "Retraining: end to end with the shipped models"
REVIEWER = "bench-expert"
SOS = Path(sys.executable).with_name("sos")  # the installed console script, as a user runs it
OVERALL = (
    ("accuracy", "accuracy"),
    ("f1_macro", "macro-F1"),
    ("kappa_quadratic", "QWK"),
    ("ece", "ECE"),
    ("pointing_game", "pointing game"),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--locked", type=int, default=60, help="phantom cases in the locked set")
    ap.add_argument("--labels", type=int, default=20, help="cases queued per part")
    ap.add_argument("--seed", type=int, default=7, help="phantom seed (training used 2025)")
    ap.add_argument("--epochs", type=int, help="student epochs (default: the CLI's)")
    ap.add_argument("--teacher-epochs", type=int, help="teacher epochs (default: the CLI's)")
    ap.add_argument(
        "--retry-lr", type=float, default=1e-4, help="retry a rejected run with this --lr (0: no)"
    )
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    ap.add_argument("--work", type=Path, help="keep everything in this (new or empty) folder")
    ap.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    ap.add_argument(
        "--render",
        type=Path,
        nargs="+",
        help="only re-render saved DIR/result.json files: the first in full, the others' "
        "timings as repeats",
    )
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before torch loads, here and in children
    if args.render is not None:
        saved = [load_saved(path) for path in args.render]
        repeats = [s["result"] for s in saved[1:]]
        text = section(argparse.Namespace(**saved[0]["args"]), saved[0]["result"], repeats)
        print(text)
        if not args.no_write:
            write_section(TITLE, text)
        return
    if not SOS.is_file():
        sys.exit(f"{SOS} is missing; install the project (pip install -e .) first.")
    if args.work is not None:
        if args.work.exists() and any(args.work.iterdir()):
            sys.exit(f"{args.work} is not empty.")
        args.work.mkdir(parents=True, exist_ok=True)
        result = run(args, args.work)
    else:
        with tempfile.TemporaryDirectory(prefix="sos-retrain-") as tmp:
            result = run(args, Path(tmp))
    text = section(args, result)
    print(text)
    if not args.no_write:
        write_section(TITLE, text)


# --- the flow -------------------------------------------------------------------------------


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    parts = make_phantoms(work, args.seed, args.locked, args.labels)
    res: dict[str, Any] = {"render_s": time.perf_counter() - t0, "parts": {}}
    for name, folder in parts.items():
        res["parts"][name] = stage_counts(folder)
    store = ["--store", str(work / "store")]

    splits = [a for s in ("train", "val", "test") for a in ("--split", s)]
    step = sos("registry", "locked", *store, "--import", str(parts["locked"]), *splits,
               "--reviewer", REVIEWER, "--json")  # fmt: skip
    res["locked"] = json.loads(step["out"])
    sos("registry", "list", *store, "--json")  # the first registry use seeds it
    res["seeded"] = check_seeded(work / "store")

    images = [p for p, _ in manifest_images(parts["locked"])]
    origin = res["seeded"]["active"]
    # Probabilities of every version while it was active: the reference for the rollback.
    res["probs"] = {
        "shipped": probabilities(res["seeded"]["shipped_student"], images, args),
        origin: probabilities(active_dir(work / "store"), images, args, expect=origin),
    }

    step = sos("retrain", *store, check=False)
    res["empty"] = {k: step[k].strip() if k in ("out", "err") else step[k] for k in step}

    res["runs"] = []
    for part in ("labels", "wrong"):
        queued = queue_labels(work / "store", parts[part])
        for lr in [None] + ([args.retry_lr] if args.retry_lr else []):
            r = retrain_once(args, work / "store", part, queued, lr)
            res["runs"].append(r)
            if r["report"]["status"] == "promoted":
                version = r["report"]["active_version"]
                res["probs"][version] = probabilities(
                    active_dir(work / "store"), images, args, expect=version
                )
            if r["report"]["status"] != "rejected" or lr is not None:
                break
            queued = r["report"]["n_labels"]  # a rejected run's labels stay queued
    res["rollbacks"] = roll_back_to(origin, work / "store", images, args, res["probs"])
    res["machine"] = machine_line()  # the load while the runs ran, not when re-rendered
    saved = {"args": {**vars(args), "work": None, "render": None}, "result": res}
    (work / "result.json").write_text(json.dumps(saved, default=_jsonable), encoding="utf-8")
    return res


def _jsonable(value: object) -> object:
    # JSON, not pickle: like model files (MW-5), results given back on the command line are
    # data and never code. Probability arrays round-trip exactly through their float values.
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot save {type(value).__name__} in result.json")


def load_saved(path: Path) -> dict[str, Any]:
    """A saved run, with its probability tables as arrays again."""
    import numpy as np

    saved = json.loads(path.read_text(encoding="utf-8"))
    for entry in saved["result"]["probs"].values():
        entry["probs"] = np.asarray(entry["probs"], dtype=np.float64)
    return saved


def queue_labels(store_dir: Path, dataset: Path) -> int:
    """Queue a labelled dataset through the store API the app uses; the queue's length."""
    from sos_core.retrain import import_labelled_dataset
    from sos_core.review import ReviewStore

    with ReviewStore.open(store_dir, create=False) as store:
        import_labelled_dataset(store, dataset, reviewer=REVIEWER, source_kind="synthetic")
        return len(store.queue())


def retrain_once(
    args: argparse.Namespace, store_dir: Path, part: str, queued: int, lr: float | None
) -> dict[str, Any]:
    """One `sos retrain --json`, timed, with what it left in the registry."""
    extra = [f"--epochs={args.epochs}"] if args.epochs else []
    extra += [f"--teacher-epochs={args.teacher_epochs}"] if args.teacher_epochs else []
    extra += [f"--lr={lr:g}"] if lr else []
    before = active_version(store_dir)
    step = sos("retrain", "--store", str(store_dir), "--json", *extra)
    report = json.loads(step["out"])
    print(f"{part} (lr {lr or 'default'}): {report['status']} in {step['wall_s']:.0f} s")
    return {
        "part": part,
        "lr": lr,
        "queued": queued,
        "wall_s": step["wall_s"],
        "report": report,
        "evaluation": json.loads(Path(report["report_path"]).read_text())["evaluation"],
        "kept": check_kept(store_dir, report, before),
    }


def roll_back_to(
    origin: str,
    store_dir: Path,
    images: list[Path],
    args: argparse.Namespace,
    probs: dict[str, Any],
) -> list[dict[str, Any]]:
    """`sos registry rollback` until `origin` is active; each step's exactness check."""
    import numpy as np

    steps = []
    while (current := active_version(store_dir)) != origin:
        step = sos("registry", "rollback", "--store", str(store_dir), "--reviewer", REVIEWER)
        now = active_version(store_dir)
        got = probabilities(active_dir(store_dir), images, args, expect=now)["probs"]
        want = probs[now]["probs"]
        steps.append(
            {
                "from": current,
                "to": now,
                "said": step["out"].strip(),
                "exact": bool(np.array_equal(got, want)),
                "max_diff": float(np.abs(got - want).max()),
                "left_diff": float(np.abs(probs[current]["probs"] - want).max()),
                "left_flips": int((probs[current]["probs"].argmax(1) != want.argmax(1)).sum()),
            }
        )
    return steps


def make_phantoms(work: Path, seed: int, n_locked: int, n_labels: int) -> dict[str, Path]:
    """Three disjoint runs of case indices of one phantom seed; the last one mislabelled."""
    from sos_core.phantom.dataset import DatasetConfig, generate_dataset
    from sos_core.phantom.stages import STAGE_NAMES

    parts: dict[str, Path] = {}
    start = 0
    for name, count in (("locked", n_locked), ("labels", n_labels), ("wrong", n_labels)):
        cfg = DatasetConfig(count=count, modalities=("slice",), seed=seed, start=start)
        generate_dataset(cfg, work / name)
        parts[name] = work / name
        start += count
    manifest = parts["wrong"] / "manifest.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    for row in rows:  # a deliberately wrong expert: every stage two steps off
        row["stage"] = (int(row["stage"]) + 2) % 4
        row["stage_name"] = STAGE_NAMES[row["stage"]]
    manifest.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    return parts


def manifest_images(folder: Path) -> list[tuple[Path, int]]:
    rows = (json.loads(x) for x in (folder / "manifest.jsonl").read_text().splitlines() if x)
    return [(folder / r["file"], int(r["stage"])) for r in rows]


def stage_counts(folder: Path) -> list[int]:
    counts = Counter(stage for _, stage in manifest_images(folder))
    return [counts.get(i, 0) for i in range(4)]


def sos(*argv: str, check: bool = True) -> dict[str, Any]:
    """Run the real `sos` CLI; its stdout, stderr, exit status and wall-clock seconds."""
    t = time.perf_counter()
    proc = subprocess.run([str(SOS), *argv], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if check and proc.returncode != 0:
        sys.exit(f"sos {' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
    return {"rc": proc.returncode, "out": proc.stdout, "err": proc.stderr, "wall_s": wall}


def check_seeded(store_dir: Path) -> dict[str, Any]:
    """The active version after seeding must hold the shipped weights, byte for byte."""
    from sos_core.retrain import ModelRegistry
    from sos_core.retrain.registry import embedded_models_dir

    shipped = embedded_models_dir()
    registry = ModelRegistry(store_dir / "models")
    active = registry.active()
    assert active is not None, "the registry did not seed itself from the shipped models"
    teacher = registry.teacher_for(active)
    assert teacher is not None, "the shipped teacher was not registered"
    for version, role in ((active, "student"), (teacher, "teacher")):
        same = (version.folder / "weights.safetensors").read_bytes() == (
            shipped / role / "weights.safetensors"
        ).read_bytes()
        assert same, f"the registered {role} is not the shipped one"
    return {
        "active": active.version,
        "teacher": teacher.version,
        "source": active.lineage.get("source_version"),
        "temperature": active.card.temperature,
        "shipped_student": shipped / "student",
    }


def active_dir(store_dir: Path) -> Path:
    from sos_core.retrain import active_model_dir

    return active_model_dir(store_dir)


def active_version(store_dir: Path) -> str:
    from sos_core.retrain import ModelRegistry

    active = ModelRegistry(store_dir / "models").active()
    return active.version if active else "-"


def probabilities(
    model_dir: Path, images: list[Path], args: argparse.Namespace, expect: str | None = None
) -> dict[str, Any]:
    """Calibrated probabilities of `Predictor(model_dir)` on each image, in order."""
    import numpy as np

    from sos_core.inference.predictor import Predictor
    from sos_core.retrain.training_data import read_image_file

    predictor = Predictor(model_dir, device="cpu", threads=args.threads)
    if expect is not None:
        assert predictor.card.version == expect, (predictor.card.version, expect)
    probs = np.array([predictor.predict_image(read_image_file(p)).probabilities for p in images])
    return {"dir": model_dir, "version": predictor.version, "probs": probs}


_DECISION = {"promoted": "promote", "rejected": "reject"}


def check_kept(store_dir: Path, report: dict[str, Any], before: str) -> dict[str, Any]:
    """After the run: the active pointer, and whether the candidate and its report are kept."""
    from sos_core.retrain import ModelRegistry

    registry = ModelRegistry(store_dir / "models")
    candidate = registry.version(report["candidate_version"])
    return {
        "active_before": before,
        "active_after": active_version(store_dir),
        "candidate_kept": candidate.decision == _DECISION[report["status"]],
        "report_exists": Path(report["report_path"]).is_file(),
        "epochs": len(candidate.lineage["training"]["history"]),
        "best_epoch": candidate.lineage["training"]["best_epoch"],
        "val_acc": best_row(candidate.lineage["training"])["val_acc"],
        "calibration": candidate.lineage.get("calibration", {}).get("student"),
    }


def best_row(training: dict[str, Any]) -> dict[str, Any]:
    """The history row of the epoch whose weights were kept."""
    return next(r for r in training["history"] if r["epoch"] == training["best_epoch"])


# --- the section ----------------------------------------------------------------------------


def section(
    args: argparse.Namespace, res: dict[str, Any], repeats: list[dict[str, Any]] | None = None
) -> str:
    parts, runs, seeded = res["parts"], res["runs"], res["seeded"]
    truly = parts["wrong"][2:] + parts["wrong"][:2]  # labelled (t + 2) % 4 for true stage t
    epochs = f"student {args.epochs or 15}, teacher {args.teacher_epochs or 10}" + (
        "" if args.epochs or args.teacher_epochs else " (the CLI defaults)"
    )
    cmd = "benchmarks/retrain_end_to_end.py" + "".join(
        f" --{k} {v:g}" if isinstance(v, float) else f" --{k} {v}"
        for k, v in (
            ("locked", args.locked),
            ("labels", args.labels),
            ("seed", args.seed),
            ("epochs", args.epochs),
            ("teacher-epochs", args.teacher_epochs),
            ("retry-lr", args.retry_lr),
            ("threads", args.threads),
        )
        if v is not None
    )
    empty = res["empty"]
    lines = [
        f"Run: `{cmd}` — {res.get('machine') or machine_line()}; torch threads "
        f"{args.threads}; CPU only. "
        "Every step below is the real `sos` CLI in a subprocess.",
        "",
        f"Phantom slices, seed {args.seed} (rendered in {res['render_s']:.1f} s); stages "
        f"0/1/2/3: locked set {sum(parts['locked'])} cases ({_counts(parts['locked'])}); "
        f"part A {sum(parts['labels'])} correct labels ({_counts(parts['labels'])}); part B "
        f"{sum(parts['wrong'])} labels with every stage shifted by +2 mod 4 (labelled "
        f"{_counts(parts['wrong'])}, truly {_counts(truly)}). `sos registry locked --import` "
        f"created the store and fixed the locked set (generation {res['locked']['generation']}, "
        f"{res['locked']['cases']} cases); `sos registry list` seeded the registry from "
        f"resources/models: active `{seeded['active']}` (`{seeded['source']}`, weights "
        f"byte-identical to the shipped ones), teacher `{seeded['teacher']}`. Epochs: {epochs}; "
        f"learning rate {_lr(None)} unless shown; "
        f"{_gate_words(runs[0]['report']['gate']['config'])}.",
        "",
        "| `sos retrain` run | queue | lr | wall s (in `retrain()`) | student epochs (best) "
        "| student's accuracy on the queue's validation labels | exit | decision |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        f"| 0: nothing queued | 0 | - | {empty['wall_s']:.1f} | - | - | {empty['rc']} | "
        f"{empty['out'] or empty['err']} |",
    ]
    for i, r in enumerate(runs, 1):
        rep, kept = r["report"], r["kept"]
        lines.append(
            f"| {i}: {_part(r)} | {rep['n_labels']} | {_lr(r['lr'])} | "
            f"{r['wall_s']:.0f} ({rep['seconds']:.0f}) | {kept['epochs']} ({kept['best_epoch']}) "
            f"| {kept['val_acc']:.2f} | 0 | **{rep['status']}** |"
        )
    lines += [repeat_line(runs, other) for other in repeats or []]
    lines += ["", *gate_table(runs, seeded), ""]
    for i, r in enumerate(runs, 1):
        rep, kept = r["report"], r["kept"]
        cal = kept["calibration"] or {}
        lines.append(
            f"- Run {i}: {rep['message']} Candidate kept in the registry as "
            f"`{rep['candidate_version']}` with its report.json: "
            f"{_yes(kept['candidate_kept'] and kept['report_exists'])}; active "
            f"`{kept['active_before']}` → `{kept['active_after']}`. Temperature: "
            f"{cal.get('source', '?')} ({cal.get('validation_cases', '?')} validation case(s); "
            f"the fit gave {cal.get('fitted', float('nan')):.3f})."
        )
    for step in res["rollbacks"]:
        lines.append(
            f"- `sos registry rollback`: {step['said']} `Predictor` probabilities on the "
            f"{args.locked} locked images vs those of `{step['to']}` when it was active: "
            f"**{'bit-identical' if step['exact'] else 'DIFFERENT'}** (largest difference "
            f"{step['max_diff']:.1e}); the model rolled back from differed from it by up to "
            f"{step['left_diff']:.3f} and in {step['left_flips']} predicted stage(s)."
        )
    if not res["rollbacks"]:
        lines.append("- Rollback: not exercised, because no run promoted.")
    shipped, origin = res["probs"]["shipped"]["probs"], res["probs"][seeded["active"]]["probs"]
    same = (shipped == origin).all()
    lines.append(
        f"- The registry's copy of the shipped student predicts exactly as resources/models "
        f"does: {_yes(bool(same))}."
    )
    return "\n".join([*lines, "", *findings(runs, seeded)])


def findings(runs: list[dict[str, Any]], seeded: dict[str, Any]) -> list[str]:
    """What the figures say, in sentences drawn from them (only for what happened)."""
    out = ["What this shows:", ""]
    by = {(r["part"], r["lr"]): r for r in runs}
    a_default, a_retry = (
        by.get(("labels", None)),
        next((r for (p, lr), r in by.items() if p == "labels" and lr), None),
    )
    if a_default and a_default["report"]["status"] == "rejected":
        ev = a_default["evaluation"]
        out.append(
            f"- With the CLI defaults, fine-tuning on {a_default['report']['n_labels']} correct "
            f"labels made the shipped student worse on the locked set (accuracy "
            f"{_move(ev, 'accuracy')}, pointing game {_move(ev, 'pointing_game')}), and the "
            "gate kept it out." + (_retry_sentence(a_retry) if a_retry else "")
        )
    b_promoted = [r for r in runs if r["part"] == "wrong" and r["report"]["status"] == "promoted"]
    b_rejected = [r for r in runs if r["part"] == "wrong" and r["report"]["status"] == "rejected"]
    if b_rejected:
        r = b_rejected[0]
        acc = r["evaluation"]["candidate"]["overall"]["accuracy"]
        learned = "a model that learned them" if acc < 0.5 else "a model that stayed mostly right"
        out.append(
            f"- The +2-shifted labels (the queue held {r['report']['n_labels']} labels with "
            f"them) at lr {_lr(r['lr'])} produced {learned} (locked-set accuracy {acc:.3f}); "
            "it was rejected, kept with its report, and the active model did not change."
        )
    for r in b_promoted:
        out.append(
            f"- At lr {_lr(r['lr'])} the candidate trained on the +2-shifted labels changed too "
            f"little to fail any margin and was **promoted**, although it agreed with "
            f"{r['kept']['val_acc']:.0%} of the queue's validation labels; those wrong labels "
            "were then marked learned (out of the queue) until the rollback returned them. The "
            "gate judges behaviour on the locked set only, not agreement with the new labels."
        )
    cal = [r["kept"]["calibration"] or {} for r in runs]
    if cal and all(c.get("source") == "parent" for c in cal):
        fitted = [c["fitted"] for c in cal]
        out.append(
            f"- Every candidate kept its parent's calibration temperature "
            f"({seeded['temperature']:.3f}): the queue's validation split held "
            f"{min(c['validation_cases'] for c in cal)}–{max(c['validation_cases'] for c in cal)} "
            f"case(s), fewer than the {cal[0]['min_cases']} needed to refit it; fitted on them, T "
            f"came out at {min(fitted):.3f}–{max(fitted):.3f}."
        )
    return out


def _move(ev: dict[str, Any], key: str) -> str:
    return f"{ev['active']['overall'][key]:.3f} → {ev['candidate']['overall'][key]:.3f}"


def repeat_line(runs: list[dict[str, Any]], other: dict[str, Any]) -> str:
    """A repeat of the same benchmark: its wall seconds, and whether it made the same models."""
    same = [r["report"]["candidate_version"] for r in runs] == [
        r["report"]["candidate_version"] for r in other["runs"]
    ] and [r["report"]["status"] for r in runs] == [r["report"]["status"] for r in other["runs"]]
    walls = " / ".join(f"{r['wall_s']:.0f}" for r in other["runs"])
    return f"\nRepeated {other.get('machine', '')}: runs 1–{len(other['runs'])} took {walls} s " + (
        "with the same candidates (identical weight hashes) and decisions; wall time "
        "follows the machine's load, the training is the same."
        if same
        else "and made **different** candidates or decisions."
    )


def gate_table(runs: list[dict[str, Any]], seeded: dict[str, Any]) -> list[str]:
    """Each model's locked-set figures (active rows once per version), ✗ where the gate failed."""
    config = runs[0]["report"]["gate"]["config"]
    names = [row["name"] for row in runs[0]["evaluation"]["active"]["per_stage"]]
    stage_margin = config["stage_margins"].get("f1", 0.0)
    head = "| model on the locked set |"
    for key, label in OVERALL:
        sign = "+" if key == "ece" else "−"
        head += f" {label} ({sign}{config['margins'].get(key, 0):.2f}) |"
    head += "".join(f" F1 {n} (−{stage_margin:.2f}) |" for n in names) + " T |"
    rows = [head, "| --- |" + " ---: |" * (len(OVERALL) + len(names) + 1)]
    shown = set()
    for i, r in enumerate(runs, 1):
        active = r["report"]["parent_version"]
        if active not in shown:
            shown.add(active)
            who = "shipped" if active == seeded["active"] else "active"
            rows.append(_metric_row(f"{who} `{active}`", r["evaluation"]["active"], {}))
        failed = {
            (c["metric"], c["scope"]) for c in r["report"]["gate"]["checks"] if not c["passed"]
        }
        label = f"run {i} candidate: {_part(r)}, lr {_lr(r['lr'])}"
        rows.append(_metric_row(label, r["evaluation"]["candidate"], failed))
    return rows


def _metric_row(label: str, ev: dict[str, Any], failed: set[tuple[str, str]]) -> str:
    def cell(value: float, key: tuple[str, str]) -> str:
        return f"{value:.3f}{' ✗' if key in failed else ''}"

    row = f"| {label} |"
    row += "".join(f" {cell(ev['overall'][k], (k, 'overall'))} |" for k, _ in OVERALL)
    row += "".join(
        f" {cell(s['f1'], ('f1', 'stage ' + str(s['stage'])))} |" for s in ev["per_stage"]
    )
    return row + f" {ev['temperature']:.3f} |"


def _retry_sentence(retry: dict) -> str:
    """What the gentler retry of the correct labels shows, in the words its outcome allows."""
    ev, lr = retry["evaluation"], _lr(retry["lr"])
    if retry["report"]["status"] == "promoted":
        return (
            f" At lr {lr} the candidate kept the shipped model's accuracy "
            f"({_move(ev, 'accuracy')}) and was promoted: the gate passes a model that is not "
            "worse, even when it is not better."
        )
    return (
        f" At lr {lr} the candidate was rejected too (accuracy {_move(ev, 'accuracy')}): even "
        "gentler fine-tuning on these labels cost accuracy on the locked set."
    )


def _lr(lr: float | None) -> str:
    return "1e-3 (default)" if lr is None else f"{lr:.0e}".replace("e-0", "e-")


def _part(r: dict[str, Any]) -> str:
    return "part A, correct" if r["part"] == "labels" else "part B, +2-shifted"


def _gate_words(config: dict[str, Any]) -> str:
    return (
        f"gate configuration version {config['version']} (the default; per-stage F1 judged for "
        f"stages with at least {config['min_stage_support']} locked cases, at least "
        f"{config['min_locked_cases']} locked cases)"
    )


def _counts(counts: list[int]) -> str:
    return "/".join(str(c) for c in counts)


def _yes(ok: bool) -> str:
    return "yes" if ok else "**NO**"


if __name__ == "__main__":
    main()
