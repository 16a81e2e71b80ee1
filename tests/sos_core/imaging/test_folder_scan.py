"""Header-only folder scans (DC-6): budgets, junk, non-regular files, symlink loops."""

from __future__ import annotations

import os
import socket
import sys
import threading
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from sos_core.imaging import LoadLimits, open_study
from sos_core.imaging import folder_scan as scan_module
from sos_core.imaging.folder_scan import scan_folder, scan_headers, series_key
from sos_core.imaging.slice_reader import SliceReader
from tests.sos_core.imaging.series_fixtures import ct_dataset, ramp_volume, write_series

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and sockets are POSIX")


def _junk(folder: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        kind = i % 5
        if kind == 0:
            data = rng.bytes(int(rng.integers(0, 600)))
        elif kind == 1:
            data = f"report {i}\n".encode() * 20
        elif kind == 2:  # a DICM preamble followed by garbage
            data = b"\0" * 128 + b"DICM" + rng.bytes(200)
        elif kind == 3:  # starts like a preamble-less dataset, then garbage
            data = b"\x08\x00\x16\x00" + rng.bytes(100)
        else:
            data = b""
        (folder / f"junk{i:05d}.bin").write_bytes(data)


def _hang_guard(fn, timeout: float = 30.0):  # noqa: ANN001, ANN202 - test helper
    """Run `fn` in a daemon thread; fail (instead of hanging the suite) if it blocks."""
    result: dict[str, object] = {}

    def target() -> None:
        result["value"] = fn()

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout)
    assert not worker.is_alive(), "the scan blocked"
    return result["value"]


def test_scan_lists_series_without_uids(tmp_path: Path) -> None:
    uid, _ = write_series(tmp_path, ramp_volume(n=4), series_number=7)
    infos = scan_folder(tmp_path)
    assert len(infos) == 1
    info = infos[0]
    assert info.key == series_key(uid)
    assert uid not in info.key
    assert (info.n_files, info.rows, info.columns, info.modality) == (4, 16, 20, "CT")
    assert "CANARY" not in info.description
    assert info.description.startswith("Series 7")


def test_non_image_dicom_is_not_a_series(tmp_path: Path) -> None:
    write_series(tmp_path, ramp_volume(n=3))
    report = ct_dataset(np.zeros((2, 2), np.uint16), position=(0, 0, 0), series_uid="1.2.3")
    del report.PixelData
    del report.Rows
    report.save_as(tmp_path / "report.dcm", enforce_file_format=True)
    assert len(scan_folder(tmp_path)) == 1


def test_sub_folders_are_scanned_and_symlink_loops_end(tmp_path: Path) -> None:
    write_series(tmp_path / "a" / "b", ramp_volume(n=3))
    os.symlink(tmp_path, tmp_path / "a" / "b" / "loop")
    os.symlink(tmp_path / "a", tmp_path / "again")
    os.symlink(tmp_path / "missing", tmp_path / "dangling")
    infos = _hang_guard(lambda: scan_folder(tmp_path))
    assert [i.n_files for i in infos] == [3]  # each file once despite two routes to it


def test_header_over_the_byte_budget_is_skipped_with_a_note(tmp_path: Path) -> None:
    write_series(tmp_path, ramp_volume(n=3))
    big = ct_dataset(np.zeros((4, 4), np.uint16), position=(0, 0, 9), series_uid="1.2.9")
    big.add_new(0x00091010, "OB", b"\0" * 200_000)  # a huge private element before pixels
    big.save_as(tmp_path / "big.dcm", enforce_file_format=True)
    scan = scan_headers(tmp_path, limits=LoadLimits(max_header_bytes=64 * 1024))
    assert len(scan.headers) == 3
    assert any("too large" in w for w in scan.warnings)
    assert len(scan_headers(tmp_path).headers) == 4  # the default budget reads it


def test_header_over_the_time_budget_is_skipped(tmp_path: Path) -> None:
    big = ct_dataset(np.zeros((4, 4), np.uint16), position=(0, 0, 9), series_uid="1.2.9")
    big.add_new(0x00091010, "OB", b"\0" * 50_000)  # needs a second read: the budget is gone
    big.save_as(tmp_path / "big.dcm", enforce_file_format=True)
    scan = scan_headers(tmp_path, limits=LoadLimits(max_header_seconds=0.0))
    assert scan.headers == ()
    assert scan.warnings


def test_max_files_stops_the_scan_with_a_note(tmp_path: Path) -> None:
    _junk(tmp_path, 20)
    scan = scan_headers(tmp_path, limits=LoadLimits(max_files=5))
    assert scan.n_files == 5
    assert any("stopped after 5 files" in w for w in scan.warnings)


@posix_only
@pytest.mark.req("DC-6")
def test_junk_and_series_scan_reads_no_pixel_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "export"
    _junk(folder / "junk", 5000)
    series = ramp_volume(n=200, rows=128, cols=128) % 4096
    write_series(folder / "series", series.astype(np.uint16))
    os.mkfifo(folder / "a-fifo")  # opening it for reading would block forever
    os.symlink("/dev/zero", folder / "zero-device")  # endless bytes if read
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "a-socket"))
    try:
        chunks: dict[str, int] = {}
        real_parse = scan_module.parse_header

        def spy_parse(path: Path, chunk: bytes, *, complete: bool) -> object:
            chunks[path.name] = max(chunks.get(path.name, 0), len(chunk))
            return real_parse(path, chunk, complete=complete)

        decodes: list[str] = []

        def no_decode(*args: object, **kwargs: object) -> None:
            decodes.append("decode")
            raise AssertionError("pixel data was read during a header scan")

        monkeypatch.setattr(scan_module, "parse_header", spy_parse)
        monkeypatch.setattr(Dataset, "pixel_array", property(no_decode))
        monkeypatch.setattr(pydicom.pixels, "pixel_array", no_decode)
        monkeypatch.setattr(SliceReader, "read_into", no_decode)
        monkeypatch.setattr(SliceReader, "read_line", no_decode)
        scan = _hang_guard(lambda: scan_headers(folder))
    finally:
        sock.close()
    assert decodes == []
    assert len(scan.headers) == 200
    assert len({h.series_uid for h in scan.headers}) == 1
    slice_size = next((folder / "series").iterdir()).stat().st_size
    series_chunks = [chunks[h.path.name] for h in scan.headers]
    # Each slice's header came from one small first read, well short of its pixel data.
    assert max(series_chunks) <= 8192 < slice_size - 128 * 128 * 2 + 8192
    assert all(h.pixel_offset is not None for h in scan.headers)
    for name in ("a-fifo", "zero-device", "a-socket"):
        assert name not in chunks  # never opened: skipped on stat


@posix_only
@pytest.mark.req("DC-6")
def test_fifo_in_a_series_folder_does_not_hang_open_study(tmp_path: Path) -> None:
    volume = ramp_volume(n=4)
    write_series(tmp_path, volume)
    os.mkfifo(tmp_path / "IM99999.dcm")
    study = _hang_guard(lambda: open_study(tmp_path))
    assert study.shape == volume.shape
