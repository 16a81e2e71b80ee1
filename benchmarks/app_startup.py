"""Benchmark: launch of `sos-review` to the first prediction on screen; CBCT preview; memory.

Each measurement is a fresh process started the way a user starts the app with a path
(`sos_desktop.launch`: the prediction process first, then `sos_desktop.app.main([PATH])`;
offscreen Qt platform), timed from just before the process is spawned. Each case runs with the
model in its own process (the default) and in the app's process (`SOS_PREDICTOR_PROCESS=0`).
The child runs the real start-up path unchanged and only watches it:

* window shown: `main()` has shown the main window;
* first image on screen: the first paint of the image view with pixels in it (for the CBCT, the
  mid-sagittal preview read by `read_midsagittal`, if it came first);
* whole study read: `open_study` returned in the load worker (for the CBCT, all 400 slices);
* first prediction on screen: the first paint of the prediction panel showing a result.

For the CBCT it also records whether the mid-sagittal slice was painted before the whole volume
had been read, and the resident memory (current and peak, from /proc) once the series is loaded
and predicted. The peer is the floor of any Qt app here: a process that imports PySide6 and
paints one empty window.

Cases: the bundled cephalogram (`resources/samples`, the first cephalogram's DICOM) and a
400-slice CBCT series rendered from the phantom (400 x 400 x 400, 0.5 mm, int16 HU; written once
into a temp folder that later runs reuse). The model is the app's own: $SOS_MODEL_DIR, else
`resources/models/student`; `--model DIR` picks another. Without a model the app says "No model"
and so does this benchmark: it reports no prediction time rather than inventing one. Settings
and the review store live in a temp folder. One warm-up launch per case is not counted (it fills
the page cache, as a second start of the app would find it); then `--runs` rounds, each
launching every case in turn, and medians are reported.

Do not run it for the record while a training run loads the machine; the load average is
printed with the results.

    .venv/bin/python benchmarks/app_startup.py [--runs 3] [--model DIR] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECTION = "Desktop: launch to first prediction"
DEFAULT_CBCT = Path(tempfile.gettempdir()) / "sos_bench_app_cbct400"
CBCT_SHAPE, CBCT_SPACING = (400, 400, 400), 0.5
CEPH_TARGET_S = 3.0


# --- the child: one launch of the app, watched ----------------------------------------------------
def child(path: Path, out: Path, timeout: float, workdir: Path) -> int:
    """Run `sos_desktop.app.main([path])` and write the times of its events to `out` (JSON)."""
    started = time.time()
    events: dict[str, Any] = {"main": started}
    from sos_desktop import launch as launcher

    launcher.start_prediction_process([str(path)])  # what `sos-review PATH` does first
    import functools

    import sos_core.imaging as imaging

    real_open = imaging.open_study

    @functools.wraps(real_open)
    def timed_open(*args: Any, **kwargs: Any) -> Any:
        study = real_open(*args, **kwargs)
        events.setdefault("study_read", time.time())  # in the load worker
        return study

    imaging.open_study = timed_open  # load_case imports it from here at call time

    from PySide6.QtCore import QEvent, QObject, QSettings, QTimer

    import sos_desktop.app as app
    from sos_desktop.main_window import MainWindow
    from sos_desktop.settings import AppSettings

    events["imported"] = time.time()

    class PaintWatch(QObject):
        """Calls `seen()` just after the watched widget paints, while `ready()` holds."""

        def __init__(self, ready: Any, seen: Any) -> None:
            super().__init__()
            self.ready, self.seen = ready, seen

        def eventFilter(self, _obj: QObject, ev: QEvent) -> bool:  # noqa: N802 - Qt API
            if ev.type() == QEvent.Type.Paint and self.ready():
                QTimer.singleShot(0, self.seen)  # runs once this paint is done
            return False

    ticks: list[float] = []  # a 10 ms timer on the GUI thread; gaps are GUI-thread stalls

    def finish(win: MainWindow) -> None:
        if "done" in events:
            return
        events["done"] = time.time()
        events.update(_stalls(ticks))
        events.update(_memory_kb("self"))
        pid = getattr(win.prediction._predictor, "pid", None)  # the prediction process, if any
        if pid is not None:
            events.update({f"child_{k}": v for k, v in _memory_kb(str(pid)).items()})
        events["model_status"] = win.model_status.text()
        if win.result is not None:
            events["device"] = win.result.prediction.device
            events["model_version"] = win.result.model_version
        if win.case is not None:
            events["shape"] = list(win.case.study.shape)
        out.write_text(json.dumps(events), encoding="utf-8")
        QTimer.singleShot(0, win.close)

    def maybe_finish(win: MainWindow) -> None:
        answered = "prediction_on_screen" in events or "no_model" in events
        if answered and "case_shown" in events and "image_on_screen" in events:
            finish(win)

    def watch(win: MainWindow) -> None:
        _heartbeat(win, ticks).start()

        def window_seen() -> None:
            events.setdefault("window_shown", time.time())

        def image_seen() -> None:
            if "image_on_screen" not in events:
                events["image_on_screen"] = time.time()
                events["first_image_was_preview"] = win.case is None
                maybe_finish(win)

        def prediction_seen() -> None:
            if "prediction_on_screen" not in events:
                events["prediction_on_screen"] = time.time()
                maybe_finish(win)

        def on_shown(_case_id: str) -> None:
            events.setdefault("case_shown", time.time())
            maybe_finish(win)

        def on_unavailable(sentence: str) -> None:
            events.setdefault("no_model", sentence)
            maybe_finish(win)

        def on_error(report: Any) -> None:
            events.setdefault("error", f"{report.title}: {report.sentence}")
            finish(win)

        watchers = [
            PaintWatch(lambda: "window_shown" not in events, window_seen),
            PaintWatch(lambda: win.viewer.pixels is not None, image_seen),
            PaintWatch(lambda: win.prediction_panel.result is not None, prediction_seen),
        ]
        win.status_text.installEventFilter(watchers[0])
        win.viewer.graphics.viewport().installEventFilter(watchers[1])
        win.prediction_panel.stage_label.installEventFilter(watchers[2])
        win._bench_watchers = watchers  # type: ignore[attr-defined]  # kept alive with the window
        win.opener.preview_ready.connect(lambda *_: events.setdefault("preview_ready", time.time()))
        win.case_shown.connect(on_shown)
        win.prediction.unavailable.connect(on_unavailable)
        win.reporter.error_reported.connect(on_error)

    real_create = app.create_window

    def create_window(settings: AppSettings | None = None, **kwargs: Any) -> MainWindow:
        ini = QSettings(str(workdir / "settings.ini"), QSettings.Format.IniFormat)
        win = real_create(AppSettings(ini), **kwargs)
        watch(win)
        return win

    app.create_window = create_window
    rc = app.main([str(path), "--quit-after", str(timeout)])
    if "done" not in events:  # the safety timer closed the window
        events["timeout"] = True
        out.write_text(json.dumps(events), encoding="utf-8")
    return rc


def floor_child(out: Path) -> int:
    """The peer: import PySide6, show one empty window, note its first paint, quit."""
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication, QWidget

    qapp = QApplication(sys.argv[:1])
    win = QWidget()
    win.resize(800, 600)
    events: dict[str, Any] = {}
    ticks: list[float] = []
    beat = _heartbeat(win, ticks)

    def idle_done() -> None:
        events.update(_stalls(ticks))
        out.write_text(json.dumps(events), encoding="utf-8")
        qapp.quit()

    class Watch(QObject):
        def eventFilter(self, _obj: QObject, ev: QEvent) -> bool:  # noqa: N802 - Qt API
            if ev.type() == QEvent.Type.Paint and "window_shown" not in events:
                events["window_shown"] = time.time()
                beat.start()  # the timer's own jitter in an idle Qt app, for one second
                QTimer.singleShot(1000, idle_done)
            return False

    watch = Watch()
    win.installEventFilter(watch)
    win.show()
    return int(qapp.exec())


# --- the parent: data, launches, medians, report -------------------------------------------------
def bundled_ceph() -> Path:
    rows = (ROOT / "resources/samples/manifest.jsonl").read_text(encoding="utf-8").splitlines()
    for line in rows:
        row = json.loads(line)
        if row.get("modality") == "ceph":
            return ROOT / "resources/samples" / (row.get("dicom") or row["file"])
    raise SystemExit("the bundled sample has no cephalogram; run docs/make_sample.py")


def cbct_series(folder: Path) -> Path:
    """The phantom's 400-slice CBCT series, written once."""
    if (folder / "complete").is_file():
        return folder
    from sos_core.phantom.params import draw_subject
    from sos_core.phantom.render_volume import render_volume
    from sos_core.phantom.writers import write_cbct_series

    print(f"writing a {CBCT_SHAPE[0]}-slice phantom CBCT series to {folder} ...", flush=True)
    vol = render_volume(
        draw_subject(12, stage=1, fov_cut_rate=0.0), size=CBCT_SHAPE, spacing=CBCT_SPACING
    )
    write_cbct_series(vol, folder, "bench_cbct")
    (folder / "complete").write_text("ok\n", encoding="utf-8")
    return folder


def launch(args: list[str], env: dict[str, str], timeout: float, work: Path) -> dict[str, Any]:
    """One fresh process; event times in seconds since just before it was spawned."""
    out = work / f"events-{time.monotonic_ns()}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), *args, "--out", str(out)]
    t0 = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout + 60)
    if not out.exists():
        tail = (proc.stderr or proc.stdout)[-2000:]
        raise SystemExit(f"the app process wrote no result (exit {proc.returncode}):\n{tail}")
    events = json.loads(out.read_text(encoding="utf-8"))
    return {k: (v - t0 if isinstance(v, float) and v > 1e9 else v) for k, v in events.items()}


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [float(r[key]) for r in runs if isinstance(r.get(key), int | float)]
    return statistics.median(values) if values else None


def _fmt(value: float | None, unit: str = "s") -> str:
    if value is None:
        return "-"
    if unit == "count":
        return f"{value:g}"
    return f"{value:.2f} {unit}" if unit == "s" else f"{value:.0f} {unit}"


MODES = {"process": "1", "in-process": "0"}  # SOS_PREDICTOR_PROCESS for each
MODE_WORDS = {"process": "model in its own process (default)", "in-process": "model in the app"}


def report(
    runs: dict[tuple[str, str], list[dict[str, Any]]],
    floor: list[dict[str, Any]],
    args: argparse.Namespace,
) -> str:
    from benchmarks._results import machine_line

    cols = [(case, mode) for case in ("ceph", "cbct") for mode in args.modes]
    ceph = runs[("ceph", args.modes[0])]
    floor_s = _median(floor, "window_shown")
    first = ceph[0]
    model = first.get("model_version") or first.get("model_status") or "?"
    no_model = all("no_model" in r for col in cols for r in runs[col])
    case_words = {
        "ceph": f"cephalogram (bundled DX, {'x'.join(map(str, first.get('shape', [])))})",
        "cbct": f"CBCT series ({'x'.join(map(str, CBCT_SHAPE))}, {CBCT_SPACING} mm)",
    }
    lines = [
        f"`benchmarks/app_startup.py --runs {args.runs}`: {machine_line()}.",
        "",
        "Fresh process per launch, started as `sos-review PATH` starts (`sos_desktop.launch`: "
        "the prediction process first, then `sos_desktop.app.main`; offscreen Qt), timed from "
        f"just before the spawn; medians of {args.runs} round(s) after one uncounted warm-up "
        "launch per column. Columns: the model loaded in its own process (the default, "
        "`SOS_PREDICTOR_PROCESS=1`) or in the app's process (`SOS_PREDICTOR_PROCESS=0`, as "
        "before). Model: "
        + (
            f"none: the app said \u201c{first['no_model']}\u201d, so there is no prediction time."
            if no_model
            else f"`{model}` on {first.get('device', '?')}."
        ),
        "",
        "| launch \u2192 event | "
        + " | ".join(f"{case_words[c]}, {MODE_WORDS[m]}" for c, m in cols)
        + " |",
        "| --- |" + " ---: |" * len(cols),
    ]
    rows = (
        ("window shown", "window_shown"),
        ("mid-sagittal slice read (`read_midsagittal`)", "preview_ready"),
        ("first image on screen", "image_on_screen"),
        ("whole study read (open_study returned)", "study_read"),
        ("case shown (whole study on screen)", "case_shown"),
        ("first prediction on screen", "prediction_on_screen"),
    )
    for words, key in rows:
        lines.append(f"| {words} | " + " | ".join(_fmt(_median(runs[c], key)) for c in cols) + " |")
    for words, key, unit in (
        ("longest GUI-thread stall, window created \u2192 first prediction", "max_stall_ms", "ms"),
        ("GUI-thread stalls over 100 ms in that time", "stalls_over_100ms", ""),
    ):
        cells = [_fmt(_median(runs[c], key), unit or "count") for c in cols]
        lines.append(f"| {words} | " + " | ".join(cells) + " |")
    for words, prefix in (("app process", ""), ("prediction process", "child_")):
        cells = []
        for c in cols:
            now, peak = _median(runs[c], prefix + "VmRSS"), _median(runs[c], prefix + "VmHWM")
            cells.append(
                "-" if now is None else f"{_fmt(_kb_mb(now), 'MB')} / {_fmt(_kb_mb(peak), 'MB')}"
            )
        lines.append(
            f"| resident memory at the end, {words}: now / peak | " + " | ".join(cells) + " |"
        )
    cbct = runs[("cbct", args.modes[0])]
    preview_first = [
        bool(r.get("first_image_was_preview"))
        and isinstance(r.get("image_on_screen"), float)
        and isinstance(r.get("study_read"), float)
        and r["image_on_screen"] < r["study_read"]
        for r in cbct
    ]
    window = _median(ceph, "window_shown")
    ratio = f"{window / floor_s:.1f}x" if window and floor_s else "-"
    lines += [
        "",
        f"Peer: an empty PySide6 window painted {_fmt(floor_s)} after launch; the app's window "
        f"(cephalogram launch) {_fmt(window)}, {ratio} the floor. GUI-thread stalls are the "
        "gaps of a 10 ms QTimer on the GUI thread; the same timer in that empty window, idle "
        f"for one second, had a longest gap of {_fmt(_median(floor, 'max_stall_ms'), 'ms')}.",
    ]
    for mode in args.modes:
        pred = _median(runs[("ceph", mode)], "prediction_on_screen")
        if pred is None:
            lines.append(
                f"Target: first prediction within {CEPH_TARGET_S:g} s: not measured ({mode})."
            )
        else:
            verdict = "met" if pred <= CEPH_TARGET_S else "missed"
            lines.append(
                f"Target: first cephalogram prediction within {CEPH_TARGET_S:g} s of launch, "
                f"{MODE_WORDS[mode]}: {pred:.2f} s ({verdict})."
            )
    margins = [
        r["study_read"] - r["image_on_screen"]
        for r, ok in zip(cbct, preview_first, strict=True)
        if ok
    ]
    lines.append(
        "Target: the CBCT's mid-sagittal slice on screen before the whole volume is read: "
        f"{sum(preview_first)} of {len(cbct)} launches"
        + (f", by a median {statistics.median(margins):.2f} s" if margins else "")
        + f" ({'met' if all(preview_first) else 'missed'})."
    )
    every = [r for c in cols for r in runs[c]]
    timeouts = sum(1 for r in every if r.get("timeout"))
    errors = sorted({r["error"] for r in every if "error" in r})
    if timeouts:
        lines.append(f"{timeouts} launch(es) hit the {args.timeout:g} s time limit.")
    if errors:
        lines.append("Errors shown by the app: " + "; ".join(errors))
    return "\n".join(lines)


def _heartbeat(parent: Any, ticks: list[float]) -> Any:
    """A 10 ms QTimer (not started) that appends the time of each tick to `ticks`."""
    from PySide6.QtCore import QTimer

    beat = QTimer(parent)
    beat.setInterval(10)
    beat.timeout.connect(lambda: ticks.append(time.perf_counter()))
    return beat


def _stalls(ticks: list[float]) -> dict[str, Any]:
    """The longest gap between heartbeat ticks (ms) and how many gaps exceeded 100 ms."""
    gaps = [1000 * (b - a) for a, b in zip(ticks, ticks[1:], strict=False)]
    if not gaps:
        return {}
    return {"max_stall_ms": max(gaps), "stalls_over_100ms": sum(g > 100 for g in gaps)}


def _memory_kb(pid: str) -> dict[str, int | None]:
    """VmRSS (now) and VmHWM (peak) of a process, in kB, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    out: dict[str, int | None] = {}
    for key in ("VmRSS", "VmHWM"):
        line = next((s for s in status if s.startswith(key + ":")), "")
        out[key] = int(line.split()[1]) if line else None
    return out


def _kb_mb(kb: float | None) -> float | None:
    return None if kb is None else kb / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="counted rounds (each launches every case)")
    ap.add_argument("--model", type=Path, help="model folder (default: the app's own choice)")
    ap.add_argument("--cbct", type=Path, default=DEFAULT_CBCT, help="where the series is kept")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds allowed per launch")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md")
    ap.add_argument(
        "--modes",
        nargs="+",
        choices=list(MODES),
        default=list(MODES),
        help="where the model loads: its own process (default) and/or the app's",
    )
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--floor", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.floor:
        return floor_child(args.out)
    if args.child is not None:
        return child(args.child, args.out, args.timeout, args.work)

    cases = {"ceph": bundled_ceph(), "cbct": cbct_series(args.cbct)}
    with tempfile.TemporaryDirectory(prefix="sos-bench-app-") as tmp:
        work = Path(tmp)
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", SOS_DATA_DIR=str(work / "store"))
        if args.model is not None:
            env["SOS_MODEL_DIR"] = str(args.model.resolve())
        child_args = ["--timeout", str(args.timeout), "--work", str(work)]
        cols = [(name, mode) for name in cases for mode in args.modes]
        envs = {mode: dict(env, SOS_PREDICTOR_PROCESS=MODES[mode]) for mode in args.modes}
        for name, mode in cols:  # warm-up, not counted
            print(f"warm-up launch: {name}, {mode}", flush=True)
            launch(["--child", str(cases[name]), *child_args], envs[mode], args.timeout, work)
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {col: [] for col in cols}
        floor: list[dict[str, Any]] = []
        for i in range(args.runs):
            floor.append(launch(["--floor"], env, 60.0, work))
            for name, mode in cols:
                result = launch(
                    ["--child", str(cases[name]), *child_args], envs[mode], args.timeout, work
                )
                runs[(name, mode)].append(result)
                shown = result.get("prediction_on_screen") or result.get("case_shown")
                print(f"round {i + 1}: {name}, {mode} done at {shown}", flush=True)
    text = report(runs, floor, args)
    print(text)
    if not args.no_write:
        from benchmarks._results import write_section

        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
