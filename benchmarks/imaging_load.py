"""Benchmark: loading a 400-slice 512x512 int16 CT series, ours vs SimpleITK.

Writes the series once with pydicom (shuffled file names, a synthetic head so that the
mid-sagittal finder has something to find) into a temp folder that later runs reuse, then
times, as the median of several runs with a warm and with a cold page cache:

* the floor: reading every file's bytes;
* SimpleITK's ImageSeriesReader (GDCM file-name sort + Execute, int16 output);
* our `open_study` (sorted volume in modality units);
* our `read_midsagittal` (the mid-sagittal slice alone, without the full volume);
* `find_midsagittal` on the loaded volume (warm only; the target is < 0.3 s).

Targets (issue 2): open_study <= 0.5x SimpleITK, read_midsagittal <= 0.4x SimpleITK's full load.
The cold cache is made with ``sync; echo 3 > /proc/sys/vm/drop_caches`` when permitted, else
with ``posix_fadvise(DONTNEED)`` on the series' files, else not measured (said in the output).
The Markdown result replaces the "## Imaging: series load vs SimpleITK" section of
benchmarks/RESULTS.md, keeping the previous run under it (``--keep``).

Usage: ``.venv/bin/python benchmarks/imaging_load.py [--runs 5] [--cold-runs 3] [--no-write]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECTION = "## Imaging: series load vs SimpleITK"
DEFAULT_DATA = Path(tempfile.gettempdir()) / "sos_bench_ct400"
N_SLICES, SIZE, SPACING = 400, 512, 0.3


def write_series(folder: Path) -> None:
    """400 CT slices of a synthetic head, int16 stored (HU), shuffled file names."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = rng.permutation(N_SLICES)
    series_uid = generate_uid()
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    for i in range(N_SLICES):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.SeriesInstanceUID, ds.StudyInstanceUID = series_uid, "1.2.826.0.1.3680043.8.498.7"
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 1, int(rng.integers(1, 999))
        ds.ImagePositionPatient = [-76.8, -76.8, i * SPACING]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing, ds.SliceThickness = [SPACING, SPACING], SPACING
        ds.Rows = ds.Columns = SIZE
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.WindowCenter, ds.WindowWidth = 400, 2000
        ds.PixelData = _head_slice(i, xx, yy, rng).tobytes()
        ds.save_as(folder / f"IM{names[i]:05d}", enforce_file_format=True)
    (folder / "complete").write_text("ok\n")


def _head_slice(i: int, xx: np.ndarray, yy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    z = (i - N_SLICES / 2) / (N_SLICES * 0.45)
    # Head centred off the middle column (x = 270), turned by 5 degrees about the vertical.
    c, s = np.cos(np.radians(5)), np.sin(np.radians(5))
    u, v = c * (xx - 270) + s * (yy - 250), -s * (xx - 270) + c * (yy - 250)
    r = (u / 200) ** 2 + (v / 235) ** 2 + z * z
    hu = np.where(r < 1, np.where(r > 0.82, 1400, 40), -1000).astype(np.int16)
    orbit = (np.abs(u) - 80) ** 2 + (v + 180) ** 2 + (z * 200 - 40) ** 2 < 35**2
    hu[orbit] = -900
    hu += rng.integers(-20, 20, hu.shape, dtype=np.int16)
    return hu.astype("<i2")


def _medians(
    rows: list[tuple[str, Callable[[], object]]], runs: int, before: Callable[[], None] | None
) -> dict[str, float]:
    """Median time of each row; rounds run every row in turn, so a change in the machine's
    load (other users) hits all rows alike instead of whichever row ran at that moment."""
    times: dict[str, list[float]] = {name: [] for name, _ in rows}
    for _ in range(runs):
        for name, fn in rows:
            if before is not None:
                before()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def _cold_method(files: list[Path]) -> tuple[str, Callable[[], None] | None]:
    def drop_all() -> None:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")

    def fadvise() -> None:
        os.sync()
        for f in files:
            fd = os.open(f, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)

    try:
        drop_all()
    except OSError:
        pass
    else:
        return "sync; echo 3 > /proc/sys/vm/drop_caches", drop_all
    if hasattr(os, "posix_fadvise"):
        fadvise()
        return "posix_fadvise(DONTNEED) on the series files", fadvise
    return "", None


def _machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return f"{os.cpu_count()} CPUs (nproc {_nproc()}), {cpu}; load average {load}"


def _nproc() -> str:
    try:
        return subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def run(folder: Path, runs: int, cold_runs: int) -> str:
    import pydicom
    import SimpleITK as sitk

    from sos_core.imaging import open_study
    from sos_core.imaging.midsagittal import find_midsagittal, read_midsagittal

    files = sorted(p for p in folder.iterdir() if p.name.startswith("IM"))

    def floor() -> None:
        for f in files:
            with open(f, "rb", buffering=0) as h:
                h.read()

    def simpleitk() -> sitk.Image:
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
        reader.SetOutputPixelType(sitk.sitkInt16)
        return reader.Execute()  # the array view would be free; the copy would not be fair

    study = open_study(folder)  # also a warm-up and a correctness check against SimpleITK
    reference = sitk.GetArrayFromImage(simpleitk())
    same = bool(np.array_equal(reference, study.pixels))
    mid_index = find_midsagittal(study)
    rows: list[tuple[str, Callable[[], object]]] = [
        ("floor: read all files' bytes", floor),
        ("SimpleITK ImageSeriesReader (int16)", simpleitk),
        ("open_study (sorted volume, HU)", lambda: open_study(folder)),
        ("read_midsagittal (mid-sagittal slice only)", lambda: read_midsagittal(folder)),
    ]
    warm = _medians(rows, runs, None)
    method, dropper = _cold_method(files)
    cold = _medians(rows, cold_runs, dropper) if dropper else {}
    find_time = _medians([("find", lambda: find_midsagittal(study))], runs, None)["find"]
    peer_warm = warm[rows[1][0]]
    peer_cold = cold.get(rows[1][0])
    lines = [
        f"### Run {dt.datetime.now().isoformat(timespec='seconds')}",
        "",
        f"- machine: {_machine()}",
        f"- Python {platform.python_version()}, numpy {np.__version__}, "
        f"pydicom {pydicom.__version__}, SimpleITK {sitk.Version_VersionString()}",
        f"- data: {N_SLICES} x {SIZE} x {SIZE} int16 CT, {len(files)} files with shuffled "
        f"names, {sum(f.stat().st_size for f in files) / 1e6:.0f} MB; volume equal to "
        f"SimpleITK's: {same}; mid-sagittal index {mid_index} (head centre at column 270)",
        f"- medians of {runs} warm and {cold_runs} cold rounds (each round runs every row in "
        "turn); cold cache: "
        + (method or "could not be measured (no permission to drop caches, no fadvise)"),
        "",
        "| measurement | warm (s) | vs SimpleITK | cold (s) | vs SimpleITK |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, _ in rows:
        cold_cell = f"{cold[name]:.3f} | {cold[name] / peer_cold:.2f}x" if peer_cold else "- | -"
        lines.append(f"| {name} | {warm[name]:.3f} | {warm[name] / peer_warm:.2f}x | {cold_cell} |")
    lines.append(f"| find_midsagittal on the loaded volume | {find_time:.3f} | - | - | - |")
    ours, mid = warm[rows[2][0]] / peer_warm, warm[rows[3][0]] / peer_warm
    lines += [
        "",
        f"Targets (warm): open_study <= 0.5x SimpleITK: {ours:.2f}x "
        f"({'met' if ours <= 0.5 else 'NOT met'}); read_midsagittal <= 0.4x: {mid:.2f}x "
        f"({'met' if mid <= 0.4 else 'NOT met'}); find_midsagittal < 0.3 s: {find_time:.3f} s "
        f"({'met' if find_time < 0.3 else 'NOT met'}).",
    ]
    if peer_cold:
        c_ours, c_mid = cold[rows[2][0]] / peer_cold, cold[rows[3][0]] / peer_cold
        lines.append(f"Cold: open_study {c_ours:.2f}x, read_midsagittal {c_mid:.2f}x SimpleITK.")
    return "\n".join(lines) + "\n"


def write_results(report: str, keep: int) -> Path:
    """Replace this benchmark's section of RESULTS.md; keep the `keep - 1` previous runs."""
    path = ROOT / "benchmarks" / "RESULTS.md"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    start = text.find(SECTION)
    if start < 0:
        before, old, after = text.rstrip("\n") + "\n\n", "", ""
    else:
        end = text.find("\n## ", start + len(SECTION))
        end = len(text) if end < 0 else end + 1
        before, old, after = text[:start], text[start + len(SECTION) : end], text[end:]
    previous = ["### Run" + part for part in old.split("### Run")[1:]]
    runs = [report.rstrip("\n") + "\n"] + [p.rstrip("\n") + "\n" for p in previous[: keep - 1]]
    intro = (
        "\nProduced by `benchmarks/imaging_load.py` (newest run first). Ratios are against "
        "SimpleITK measured in the same run on the same files.\n\n"
    )
    section = SECTION + "\n" + intro + "\n".join(runs)
    path.write_text(before + section + ("\n" + after if after else ""), encoding="utf-8")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5, help="warm runs per measurement (>= 3)")
    parser.add_argument("--cold-runs", type=int, default=3, help="cold runs per measurement")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="series folder")
    parser.add_argument("--keep", type=int, default=2, help="runs kept in RESULTS.md")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if not (args.data / "complete").exists():
        print(f"writing the series to {args.data} ...", file=sys.stderr)
        write_series(args.data)
    report = run(args.data, max(3, args.runs), max(1, args.cold_runs))
    print(report)
    if not args.no_write:
        print(f"written to {write_results(report, args.keep)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
