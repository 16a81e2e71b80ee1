"""Queue export: a dataset folder in the phantom's manifest format, from verified blobs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sos_core.errors import ParameterError
from sos_core.review import ReviewStore, export_queue
from sos_core.review.export import split_for, to_uint16


def _rows(folder: Path) -> list[dict]:
    text = (folder / "manifest.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line]


def test_export_writes_16_bit_pngs_and_a_manifest(tmp_path: Path) -> None:
    ct = np.arange(-1024, 48 * 64 - 1024, dtype=np.int16).reshape(48, 64)
    ceph = (np.arange(48 * 64) % 200).astype(np.uint8).reshape(48, 64)
    with ReviewStore.open(tmp_path / "store") as store:
        a = store.ingest(ct, source_kind="synthetic", modality="CT", pixel_spacing=(0.3, 0.4)).case
        b = store.ingest(ceph, source_kind="synthetic", modality="DX").case
        store.add_label(a.case_id, stage=3, box=(2, 3, 40, 30), reviewer="dr-a")
        store.add_label(
            b.case_id, stage=0, box=(1, 1, 9, 9), reviewer="dr-b", box_source="suggested"
        )
        summary = export_queue(store, tmp_path / "dataset", val_fraction=0.5)
        with pytest.raises(ParameterError, match="exists already"):
            export_queue(store, tmp_path / "dataset")
        entries = store.audit_entries()
    assert summary.per_stage == {0: 1, 3: 1}
    rows = {r["case_id"]: r for r in _rows(summary.folder)}
    assert set(rows) == {a.case_id, b.case_id}
    ra = rows[a.case_id]
    assert {"file", "modality", "stage", "sos_box", "pixel_spacing", "split", "case_id"} <= set(ra)
    assert ra["stage"] == 3
    assert ra["sos_box"] == [2, 3, 40, 30]
    assert ra["modality"] == "CT"
    assert ra["pixel_spacing"] == [0.3, 0.4]
    assert rows[b.case_id]["pixel_spacing"] is None
    assert rows[b.case_id]["box_source"] == "suggested"
    assert {r["split"] for r in rows.values()} <= {"train", "val"}
    assert ra["split"] == split_for(a.case_id, 0.5)
    for case_id, original in ((a.case_id, ct), (b.case_id, ceph)):
        row = rows[case_id]
        with Image.open(summary.folder / row["file"]) as img:
            assert img.mode.startswith("I;16")
            png = np.asarray(img)
        restored = png * row["intensity"]["slope"] + row["intensity"]["intercept"]
        assert np.array_equal(restored.astype(original.dtype), original)
    assert entries[-1].action == "queue.export"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_float_images_are_scaled_with_the_scale_recorded() -> None:
    pixels = np.linspace(-2.5, 7.5, 100, dtype=np.float32).reshape(10, 10)
    png, slope, intercept = to_uint16(pixels)
    assert png.dtype == np.uint16
    assert png.min() == 0
    assert png.max() == 65535
    assert np.allclose(png * slope + intercept, pixels, atol=slope)


def test_empty_queue_exports_an_empty_manifest(tmp_path: Path) -> None:
    with ReviewStore.open(tmp_path / "store") as store:
        summary = export_queue(store, tmp_path / "dataset")
    assert summary.label_ids == ()
    assert _rows(summary.folder) == []
