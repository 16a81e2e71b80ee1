"""DICOMDIR input and DC-5: no path is derived from a DICOM value except a checked file ID."""

from __future__ import annotations

import builtins
import copy
import io
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.fileset import FileSet

from sos_core.errors import NotAnImage
from sos_core.imaging import open_study
from sos_core.imaging.dicomdir import open_dicomdir, referenced_files, resolve_inside
from sos_core.imaging.midsagittal import read_midsagittal
from tests.sos_core.imaging.series_fixtures import ct_dataset, ramp_volume, write_series


def _make_disc(tmp_path: Path, n: int = 4) -> tuple[Path, str, np.ndarray]:
    """A FileSet-written DICOMDIR in tmp_path/a/disc for one shuffled series."""
    volume = ramp_volume(n=n)
    uid, paths = write_series(tmp_path / "src", volume)
    fs = FileSet()
    for path in paths:
        fs.add(path)
    disc = tmp_path / "a" / "disc"
    fs.write(disc)
    return disc / "DICOMDIR", uid, volume


def _add_records(dicomdir: Path, *file_ids: object) -> None:
    ds = dcmread(dicomdir)
    template = ds.DirectoryRecordSequence[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom rightly warns about these CS values
        for file_id in file_ids:
            record = copy.deepcopy(template)
            record.ReferencedFileID = file_id
            ds.DirectoryRecordSequence.append(record)
        ds.save_as(dicomdir)


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path passed to open()/io.open()/os.open() while the test runs."""
    seen: list[str] = []
    real_open, real_io_open, real_os_open = builtins.open, io.open, os.open

    def spy_open(file: object, *args: object, **kwargs: object) -> object:
        seen.append(str(file))
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    def spy_io_open(file: object, *args: object, **kwargs: object) -> object:
        seen.append(str(file))
        return real_io_open(file, *args, **kwargs)  # type: ignore[call-overload]

    def spy_os_open(path: object, *args: object, **kwargs: object) -> int:
        seen.append(str(path))
        return real_os_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(io, "open", spy_io_open)
    monkeypatch.setattr(os, "open", spy_os_open)
    return seen


def test_dicomdir_opens_its_series(tmp_path: Path) -> None:
    dicomdir, _, volume = _make_disc(tmp_path)
    study = open_study(dicomdir)
    np.testing.assert_array_equal(study.pixels, volume.astype(np.int32) - 1024)
    assert all(p.is_relative_to(dicomdir.parent) for p in study.sources)
    assert study.warnings == ()


def test_midsagittal_fast_path_reads_a_dicomdir(tmp_path: Path) -> None:
    dicomdir, _, _ = _make_disc(tmp_path, n=6)
    assert read_midsagittal(dicomdir).kind == "image"


@pytest.mark.req("DC-5")
def test_entries_pointing_outside_are_never_opened(tmp_path: Path, opened: list[str]) -> None:
    dicomdir, uid, volume = _make_disc(tmp_path)
    # A valid slice of the same series outside the disc: it must not join the volume.
    outside = ct_dataset(np.zeros((16, 20), np.uint16), position=(-10, -20, 99), series_uid=uid)
    outside.save_as(tmp_path / "outside.dcm", enforce_file_format=True)
    (tmp_path / "elsewhere").mkdir()
    outside.save_as(tmp_path / "elsewhere" / "IM1", enforce_file_format=True)
    (dicomdir.parent / "LINK").symlink_to(tmp_path / "elsewhere")
    _add_records(
        dicomdir,
        ["..", "..", "outside.dcm"],
        "..\\..\\outside.dcm",
        ["", "tmp", "outside.dcm"],
        ["LINK", "IM1"],
        [str(tmp_path / "outside.dcm")],
    )
    opened.clear()
    study = open_dicomdir(dicomdir)
    assert study.shape == volume.shape
    forbidden = {tmp_path / "outside.dcm", tmp_path / "elsewhere" / "IM1"}
    touched = {Path(p).resolve() for p in opened if not p.isdigit()}  # ints: fdopen'ed fds
    assert not touched & {f.resolve() for f in forbidden}
    assert all(p.is_relative_to(dicomdir.parent.resolve()) for p in touched)
    assert any("outside its folder" in w for w in study.warnings)
    assert "5 entries" in next(w for w in study.warnings if "outside its folder" in w)


@pytest.mark.req("DC-5")
def test_uids_with_path_characters_create_no_file(tmp_path: Path) -> None:
    folder = tmp_path / "series"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the invalid UIDs we write
        uid, paths = write_series(folder, ramp_volume(n=3), series_uid="1.2/../../evil")
        for path in paths:
            ds = dcmread(path)
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "../../x/y"
            ds.save_as(path, enforce_file_format=True)
    before = sorted(tmp_path.parent.rglob("*"))
    study = open_study(folder)
    mid = read_midsagittal(folder)
    after = sorted(tmp_path.parent.rglob("*"))
    assert before == after
    assert study.shape[0] == 3
    assert mid.kind == "image"
    key = study.series[0].key
    assert "/" not in key
    assert ".." not in key
    assert uid not in key


@pytest.mark.parametrize(
    ("file_id", "inside"),
    [
        (["IMAGES", "IM0001"], True),
        ("IM0001", True),
        (["..", "x"], False),
        (["a/../../x"], False),
        (["C:", "x"], False),
        (["."], False),
        (["", "etc"], False),
        (["IM\x00"], True),  # trailing NUL padding is stripped
        ([], False),
    ],
)
def test_resolve_inside_accepts_only_plain_names(
    tmp_path: Path, file_id: object, inside: bool
) -> None:
    root = tmp_path.resolve()
    result = resolve_inside(root, file_id)  # type: ignore[arg-type]
    assert (result is not None) == inside
    if result is not None:
        assert result.is_relative_to(root)


def test_missing_referenced_files_are_reported(tmp_path: Path) -> None:
    dicomdir, _, _ = _make_disc(tmp_path)
    _add_records(dicomdir, ["NOPE", "IM9"])
    files, notes = referenced_files(dicomdir)
    assert len(files) == 4
    assert any("missing" in n for n in notes)


def test_an_image_named_dicomdir_is_not_an_index(tmp_path: Path) -> None:
    ds = ct_dataset(np.zeros((4, 4), np.uint16), position=(0, 0, 0), series_uid="1.2.3")
    ds.save_as(tmp_path / "DICOMDIR", enforce_file_format=True)
    with pytest.raises(NotAnImage):
        open_study(tmp_path / "DICOMDIR")
