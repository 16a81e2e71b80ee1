"""`load_cases_sized`: each case at its modality's input size, results back in case order."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sos_core.distill.dataset import load_cases, load_cases_sized, read_manifest
from sos_core.distill.metrics import pointing_hits
from tests.sos_core.training.conftest import make_tiny_dataset


def test_cases_are_read_at_their_modalitys_size_and_put_back_in_order(tmp_path: Path) -> None:
    data = make_tiny_dataset(tmp_path, n=12, modalities=("slice", "ceph", "ceph"))
    records = read_manifest(data)
    sized = load_cases_sized(records, lambda m: 96 if m == "ceph" else 64)
    assert [g.inputs.shape[-1] for g in sized.groups] == [64, 96]
    ids = sized.in_order([np.array([r.case_id for r in g.records], object) for g in sized.groups])
    assert ids.tolist() == [r.case_id for r in records]
    assert sized.labels.tolist() == [r.stage for r in records]
    # Each group holds exactly what load_cases gives at that size, and per-case results of the
    # groups come back in the records' order.
    for size, group, pos in zip((64, 96), sized.groups, sized.positions, strict=True):
        alone = load_cases([records[i] for i in pos], size)
        assert np.array_equal(group.inputs, alone.inputs)
        assert all(records[i].modality == ("ceph" if size == 96 else "slice") for i in pos)
    side = sized.in_order([np.full(len(g), g.inputs.shape[-1]) for g in sized.groups])
    assert side.tolist() == [96 if r.modality == "ceph" else 64 for r in records]


def test_pointing_hits_come_back_to_their_cases(tmp_path: Path) -> None:
    data = make_tiny_dataset(tmp_path, n=6, modalities=("slice", "ceph"))
    records = read_manifest(data)
    sized = load_cases_sized(records, lambda m: 96 if m == "ceph" else 64)
    # Cephalogram maps peak at their true box's centre (in the 96 px frame), slice maps in a
    # corner outside every tiny box.
    hits = []
    for group in sized.groups:
        size = group.inputs.shape[-1]
        maps = np.zeros((len(group), size, size), np.float32)
        for m, (x0, y0, x1, y1) in zip(maps, group.boxes, strict=True):
            y, x = (int((y0 + y1) / 2), int((x0 + x1) / 2)) if size == 96 else (0, 0)
            m[y, x] = 1.0
        hits.append(pointing_hits(maps, group.boxes))
    assert sized.in_order(hits).tolist() == [r.modality == "ceph" for r in records]


def test_no_cases_give_one_empty_group() -> None:
    sized = load_cases_sized([], lambda m: 64)
    assert len(sized) == 0
    assert sized.labels.shape == (0,)
