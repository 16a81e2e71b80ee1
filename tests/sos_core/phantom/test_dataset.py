"""Dataset folders: manifest contract, fixed splits, determinism, DICOM round trip, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from sos_core.cli import main
from sos_core.errors import ParameterError
from sos_core.imaging import open_study
from sos_core.phantom.dataset import DatasetConfig, case_seed, generate_dataset, split_of
from sos_core.phantom.params import draw_subject
from sos_core.phantom.preview import contact_sheet
from sos_core.phantom.render_ceph import render_ceph
from sos_core.phantom.render_volume import render_volume
from sos_core.phantom.writers import write_cbct_series, write_ceph_dx

_SMALL = {"size": 64, "spacing": 3.6, "cbct_size": 32, "cbct_spacing": 7.2}


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_manifest_rows_follow_the_contract(tmp_path: Path) -> None:
    cfg = DatasetConfig(count=4, modalities=("slice", "ceph", "cbct"), seed=3, **_SMALL)
    rows = generate_dataset(cfg, tmp_path)
    lines = (tmp_path / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == rows
    assert len(rows) == 12
    for row in rows:
        for key in (
            "file",
            "modality",
            "stage",
            "stage_name",
            "fusion_fraction",
            "sos_box",
            "pixel_spacing",
            "split",
            "sex",
            "age",
            "seed",
            "case_id",
        ):
            assert key in row, key
        assert (tmp_path / row["file"]).exists()
        x0, y0, x1, y1 = row["sos_box"]
        assert x0 < x1
        assert y0 < y1
    slices = [r for r in rows if r["modality"] == "slice"]
    assert all(r["hu_offset"] == 1024 for r in slices)
    cbct = [r for r in rows if r["modality"] == "cbct"]
    assert all("midline_x_mm" in r for r in cbct)
    meta = json.loads((tmp_path / "dataset.json").read_text())
    assert meta["generator"].startswith("sos-phantom")
    assert meta["config"]["seed"] == 3


def test_slice_png_holds_hu_plus_offset(tmp_path: Path) -> None:
    rows = generate_dataset(DatasetConfig(count=1, **_SMALL), tmp_path)
    study = open_study(tmp_path / rows[0]["file"])
    assert study.pixels.dtype == np.uint16
    assert study.pixels.shape == (64, 64)
    assert study.pixels.min() < 100 <= 1024 < study.pixels.max()  # air ~ 24, bone > 1024


def test_splits_are_fixed_by_seed_and_index() -> None:
    splits = [split_of(5, i) for i in range(40)]
    assert splits.count("train") == 28
    assert splits.count("val") == 6
    assert splits.count("test") == 6
    assert splits == [split_of(5, i) for i in range(40)]
    assert splits != [split_of(6, i) for i in range(40)]


def test_same_seed_gives_identical_bytes_whatever_the_count(tmp_path: Path) -> None:
    a = DatasetConfig(count=3, modalities=("slice", "ceph", "cbct"), seed=9, **_SMALL)
    generate_dataset(a, tmp_path / "a")
    generate_dataset(a, tmp_path / "b")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    generate_dataset(
        DatasetConfig(count=2, modalities=("slice",), seed=9, **_SMALL), tmp_path / "c"
    )
    for name in ("slices/case_000000.png", "slices/case_000001.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "c" / name).read_bytes()
    assert case_seed(9, 1) != case_seed(10, 1)


def test_workers_give_the_same_files(tmp_path: Path) -> None:
    cfg = DatasetConfig(count=4, seed=2, **_SMALL)
    generate_dataset(cfg, tmp_path / "one")
    generate_dataset(DatasetConfig(count=4, seed=2, workers=2, **_SMALL), tmp_path / "two")
    assert _files(tmp_path / "one") == _files(tmp_path / "two")


def test_cbct_series_round_trip(tmp_path: Path) -> None:
    p = draw_subject(17, stage=1)
    vol = render_volume(p, size=96, spacing=2.4)
    paths = write_cbct_series(vol, tmp_path / "ct", "case_x")
    assert len(paths) == 96
    assert [q.name for q in paths] != sorted(q.name for q in paths), "names are shuffled"
    study = open_study(tmp_path / "ct")
    assert study.kind == "volume"
    assert study.modality == "CT"
    assert study.shape == (96, 96, 96)
    assert study.spacing == pytest.approx((2.4, 2.4, 2.4))
    assert np.allclose(np.asarray(study.direction), [[0, 0, 1], [0, 1, 0], [1, 0, 0]])
    assert study.origin == pytest.approx(vol.origin)
    assert np.array_equal(np.asarray(study.pixels), vol.volume)
    ds = pydicom.dcmread(paths[0])
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert list(ds.ImageOrientationPatient) == [1, 0, 0, 0, 1, 0]


def test_automatic_midsagittal_slice_is_within_2_mm(tmp_path: Path) -> None:
    from sos_core.imaging.midsagittal import find_midsagittal

    for seed in (31, 32, 33):
        p = draw_subject(seed)
        vol = render_volume(p, size=96, spacing=2.4)
        write_cbct_series(vol, tmp_path / str(seed), f"case_{seed}")
        study = open_study(tmp_path / str(seed))
        found_x = study.origin[0] + find_midsagittal(study) * study.spacing[2]
        assert abs(found_x - vol.midline_x_mm) <= 2.0 + study.spacing[2] / 2


def test_ceph_dx_is_readable_with_its_spacing(tmp_path: Path) -> None:
    c = render_ceph(draw_subject(8), size=64, spacing=3.6)
    path = write_ceph_dx(c, tmp_path / "ceph.dcm", "case_c")
    study = open_study(path)
    assert study.modality == "DX"
    assert study.shape == (64, 64)
    assert study.spacing == pytest.approx(c.pixel_spacing, rel=1e-5)


def test_preview_draws_a_contact_sheet(tmp_path: Path) -> None:
    rows = generate_dataset(DatasetConfig(count=8, **_SMALL), tmp_path / "ds")
    out = contact_sheet(rows, tmp_path / "ds", tmp_path / "sheet.png", per_stage=2, cell=64)
    assert out.stat().st_size > 1000


def test_refuses_a_folder_with_files(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(ParameterError, match="already holds files"):
        generate_dataset(DatasetConfig(count=1, **_SMALL), tmp_path)
    with pytest.raises(ParameterError, match="number of cases"):
        DatasetConfig(count=0).validate()
    with pytest.raises(ParameterError, match="modalities"):
        DatasetConfig(count=1, modalities=("mri",)).validate()


def test_cli_generates_and_reports_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ds"
    code = main(
        [
            "phantom",
            "--count",
            "2",
            "--out",
            str(out),
            "--size",
            "64",
            "--spacing",
            "3.6",
            "--preview",
            "--seed",
            "4",
        ]
    )
    assert code == 0
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 2
    assert (out / "preview.png").exists()
    assert main(["phantom", "--count", "2", "--out", str(out)]) == 2
    assert "already holds files" in capsys.readouterr().err
    assert main(["phantom", "--count", "-3", "--out", str(tmp_path / "neg")]) == 2
