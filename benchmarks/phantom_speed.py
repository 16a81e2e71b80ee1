"""Phantom speed: mid-sagittal slices per second and one 256^3 CBCT series rendered + written.

Targets (issue 3, on this 2-core machine): >= 50 slice cases per second in one process, and a
256^3 CBCT series rendered and written in < 3 s. Peers measured in the same run:

- slices: a naive renderer that evaluates every solid on every pixel (no bounding boxes, no
  row-wise ellipsoid solve); the ratio shows what the culling buys;
- CBCT writing: pydicom's own per-file `save_as` of the same datasets.

Run: ``.venv/bin/python benchmarks/phantom_speed.py [--runs 5] [--slices 200]``; the result
goes to the "Phantom: speed and hardness" section of benchmarks/RESULTS.md (speed part).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
from _results import RESULTS, machine_line, write_section  # benchmarks/ is on sys.path

from sos_core.phantom.anatomy import build_head
from sos_core.phantom.dataset import case_seed
from sos_core.phantom.materials import AIR
from sos_core.phantom.painter import _affine, _apply, _coords, _inside, slice_grid
from sos_core.phantom.params import draw_subject
from sos_core.phantom.render_ceph import CEPH_TILT_RESIDUAL, render_ceph
from sos_core.phantom.render_slice import TILT_RESIDUAL, render_slice
from sos_core.phantom.render_volume import render_volume
from sos_core.phantom.writers import write_cbct_series, write_png16


def slices_per_second(n: int, out: Path, write: bool) -> tuple[float, float]:
    """(cases per wall-clock second, cases per CPU second of this process)."""
    t, c = time.perf_counter(), time.process_time()
    for i in range(n):
        p = draw_subject(case_seed(0, i))
        img = render_slice(p, head=build_head(p, tilt_residual=TILT_RESIDUAL))
        if write:
            write_png16(img, out / f"{i}.png")
    return n / (time.perf_counter() - t), n / (time.process_time() - c)


def naive_slices_per_second(n: int) -> float:
    """Peer: every solid evaluated on the whole 256 x 256 plane (anatomy only, no artefacts)."""
    t = time.perf_counter()
    for i in range(n):
        p = draw_subject(case_seed(0, i))
        head = build_head(p, tilt_residual=TILT_RESIDUAL)
        grid = slice_grid(head.midline_x_mm, (114.75, 114.75), (256, 256), (0.9, 0.9))
        img = np.full(grid.shape, AIR, np.float32)
        ss = head.shapes

        const, coef = _affine(grid, ss.centers, ss.rots, ss.radii)
        ranges = [np.arange(256, dtype=np.float32)] * 2
        for k in range(len(ss)):
            lc = _coords(const[k].astype(np.float32), coef[k].astype(np.float32), ranges)
            mask = _inside(
                lc, int(ss.powers[k]), int(ss.powers_z[k]), float(ss.tapers[k]), ss.clips[k]
            )
            _apply(img, int(ss.modes[k]), ss.values[k], float(ss.thresholds[k]), mask)
        head.band.paint(img, grid)
    return n / (time.perf_counter() - t)


def cbct_seconds(out: Path) -> tuple[float, float, float]:
    """(render s, write s, pydicom save_as s) for one 256^3 series."""
    p = draw_subject(7)
    t = time.perf_counter()
    vol = render_volume(p)
    t1 = time.perf_counter()
    paths = write_cbct_series(vol, out / "ours", "bench")
    t2 = time.perf_counter()
    datasets = [pydicom.dcmread(path) for path in paths]
    (out / "peer").mkdir()
    t2b = time.perf_counter()
    for k, ds in enumerate(datasets):  # peer: pydicom encodes every file in full
        ds.save_as(out / "peer" / f"{k}.dcm", enforce_file_format=True)
    t3 = time.perf_counter()
    return t1 - t, t2 - t1, t3 - t2b


SECTION = "Phantom: speed and hardness"


def update_part(part: str, text: str) -> None:
    """Replace the `part` ("speed" or "hardness") of the phantom section in RESULTS.md."""
    current = ""
    if RESULTS.exists():
        body = RESULTS.read_text(encoding="utf-8")
        start = body.find(f"## {SECTION}\n")
        if start >= 0:
            end = body.find("\n## ", start + 1)
            current = body[start + len(SECTION) + 4 : end if end >= 0 else len(body)]
    parts = {}
    for name in ("speed", "hardness"):
        a, b = current.find(f"<!-- {name} -->"), current.find(f"<!-- /{name} -->")
        if a >= 0 and b > a:
            parts[name] = current[a + len(name) + 9 : b].strip()
    parts[part] = text.strip()
    body = "\n\n".join(
        f"<!-- {n} -->\n{parts[n]}\n<!-- /{n} -->" for n in ("speed", "hardness") if n in parts
    )
    write_section(SECTION, body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--slices", type=int, default=200)
    ap.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="phantom_speed_"))
    try:
        render_slice(draw_subject(0))  # warm caches (cached anatomy templates, imports)
        rates, rates_w, rates_cpu, rates_w_cpu = [], [], [], []
        naive, cbct, cephs = [], [], []
        cold = None
        for r in range(args.runs):
            wall, cpu = slices_per_second(args.slices, tmp, write=False)
            rates.append(wall)
            rates_cpu.append(cpu)
            wall, cpu = slices_per_second(args.slices, tmp, write=True)
            rates_w.append(wall)
            rates_w_cpu.append(cpu)
            naive.append(naive_slices_per_second(max(10, args.slices // 10)))
            shutil.rmtree(tmp / "cbct", ignore_errors=True)
            (tmp / "cbct").mkdir()
            times = cbct_seconds(tmp / "cbct")
            cold = cold or times
            cbct.append(times)
            t = time.perf_counter()
            for i in range(5):
                p = draw_subject(case_seed(1, i))
                render_ceph(p, head=build_head(p, tilt_residual=CEPH_TILT_RESIDUAL))
            cephs.append(5 / (time.perf_counter() - t))
            print(
                f"run {r + 1}: {rates[-1]:.1f} slices/s, {rates_w[-1]:.1f} with PNG, naive "
                f"{naive[-1]:.1f}/s; CBCT render {times[0]:.2f} s + write {times[1]:.2f} s "
                f"(pydicom {times[2]:.2f} s); {cephs[-1]:.2f} cephs/s"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = statistics.median
    render_s, write_s, peer_s = (med([c[i] for c in cbct]) for i in range(3))
    total = render_s + write_s
    rate, rate_w, rate_naive = med(rates), med(rates_w), med(naive)
    cpu, cpu_w = med(rates_cpu), med(rates_w_cpu)
    first = cold[0] + cold[1] if cold else float("nan")
    command = f"benchmarks/phantom_speed.py --runs {args.runs} --slices {args.slices}"
    lines = [
        f"Speed, produced by `{command}` (medians of {args.runs} runs; {machine_line()}).",
        "",
        "| measurement | result | peer in the same run | ratio |",
        "| --- | ---: | --- | ---: |",
        f"| mid-sagittal slice cases (256 x 256, 0.9 mm) | {rate:.1f} /s "
        f"| naive all-pixel renderer {rate_naive:.1f} /s | {rate / rate_naive:.1f}x |",
        f"| the same, written as 16-bit PNG | {rate_w:.1f} /s | - | - |",
        f"| slice cases per CPU-second of this process (render; with PNG) | {cpu:.1f} /s; "
        f"{cpu_w:.1f} /s | - | - |",
        f"| 256^3 CBCT render | {render_s:.2f} s | - | - |",
        f"| 256^3 CBCT write (256 DICOM files) | {write_s:.2f} s "
        f"| pydicom save_as {peer_s:.2f} s | {peer_s / write_s:.1f}x |",
        f"| 256^3 CBCT render + write | {total:.2f} s (first run {first:.2f} s) | - | - |",
        f"| lateral cephalograms (256 x 256) | {med(cephs):.2f} /s | - | - |",
        "",
        f"Targets: >= 50 slice cases/s: {rate:.1f} ({'met' if rate >= 50 else 'NOT met'}); "
        f"256^3 CBCT rendered + written < 3 s: {total:.2f} s "
        f"({'met' if total < 3 else 'NOT met'}). The machine is shared: with a load average "
        "above 2 the wall-clock rates fall well below the CPU-time rates.",
    ]
    text = "\n".join(line for line in lines if line is not None)
    print(text)
    if not args.no_write:
        update_part("speed", text)


if __name__ == "__main__":
    main()
