"""Worklist logic: review-priority order, filters, status transitions, folder discovery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sos_core.errors import ParameterError
from sos_core.worklist import (
    WorklistEntry,
    case_id_for,
    discover_cases,
    margin_uncertainty,
    order_worklist,
    with_label,
    with_prediction,
    without_label,
)


def _e(name: str, **kw: object) -> WorklistEntry:
    return WorklistEntry(case_id=f"case-{name}", path=Path(name), display_name=name, **kw)  # type: ignore[arg-type]


def test_margin_uncertainty_hand_computed() -> None:
    assert margin_uncertainty([0.7, 0.2, 0.1, 0.0]) == pytest.approx(0.5)
    assert margin_uncertainty([0.45, 0.45, 0.1]) == pytest.approx(1.0)
    assert margin_uncertainty([1.0, 0.0]) == pytest.approx(0.0)
    assert margin_uncertainty([1.0]) == pytest.approx(0.0)
    with pytest.raises(ParameterError):
        margin_uncertainty([])


def test_priority_flags_then_uncertainty_then_new_then_reviewed() -> None:
    entries = [
        _e("reviewed", status="confirmed", probabilities=(0.4, 0.6), flags=("low_confidence",)),
        _e("new"),
        _e("certain", status="predicted", probabilities=(0.95, 0.05)),
        _e("unsure", status="predicted", probabilities=(0.5, 0.45, 0.05)),
        _e("flag1", status="flagged", probabilities=(0.9, 0.1), flags=("between_stages",)),
        _e(
            "flag2",
            status="flagged",
            probabilities=(0.9, 0.1),
            flags=("between_stages", "attention_off_target"),
        ),
    ]
    names = [e.display_name for e in order_worklist(entries)]
    assert names == ["flag2", "flag1", "unsure", "certain", "new", "reviewed"]


def test_filters_and_other_orders() -> None:
    entries = [_e("b-case", status="predicted", probabilities=(0.9, 0.1)), _e("A-case"), _e("c")]
    assert [e.display_name for e in order_worklist(entries, sort="name")] == [
        "A-case",
        "b-case",
        "c",
    ]
    assert [e.display_name for e in order_worklist(entries, statuses={"new"})] == ["A-case", "c"]
    assert [e.display_name for e in order_worklist(entries, text="CASE")] == ["b-case", "A-case"]
    assert [e.display_name for e in order_worklist(entries, sort="status")][0] != "b-case"
    with pytest.raises(ParameterError):
        order_worklist(entries, sort="random")  # type: ignore[arg-type]


def test_status_transitions() -> None:
    e = _e("x")
    assert e.uncertainty is None
    p = with_prediction(e, 1, [0.2, 0.7, 0.1], [])
    assert p.status == "predicted"
    assert p.uncertainty == pytest.approx(0.5)
    f = with_prediction(e, 1, [0.4, 0.45, 0.15], ["between_stages"])
    assert f.status == "flagged"
    assert with_label(p, 1, "Dr A").status == "confirmed"
    c = with_label(f, 2, "Dr A")
    assert (c.status, c.labelled_stage, c.reviewer) == ("corrected", 2, "Dr A")
    assert with_label(e, 0, "Dr A").status == "labelled"
    # a re-prediction does not hide that a case was reviewed; undo restores the prediction state
    assert with_prediction(c, 1, [0.1, 0.9], []).status == "corrected"
    assert without_label(c).status == "flagged"
    assert without_label(with_label(e, 0, "Dr A")).status == "new"


def test_case_id_is_stable_and_holds_no_path_text(tmp_path: Path) -> None:
    p = tmp_path / "CANARY-Smith^John"
    assert case_id_for(p) == case_id_for(p)
    assert "CANARY" not in case_id_for(p)
    assert case_id_for(p) != case_id_for(tmp_path / "other")


def test_discover_folder_of_rasters_and_subfolders(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "b.JPG").write_bytes(b"x")
    (tmp_path / "series1").mkdir()
    (tmp_path / "series1" / "IM1.dcm").write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    (tmp_path / ".hidden").write_bytes(b"x")
    cases = discover_cases(tmp_path)
    assert cases is not None
    assert [(c.display_name, c.modality) for c in cases] == [
        ("series1", ""),
        ("a.png", "PNG"),
        ("b.JPG", "JPEG"),
    ]
    assert all(c.status == "new" for c in cases)


def test_single_study_folders_are_not_worklists(tmp_path: Path) -> None:
    series = tmp_path / "series"
    series.mkdir()
    for i in range(3):
        (series / f"IM{i}.dcm").write_bytes(b"x")
    assert discover_cases(series) is None
    one = tmp_path / "one"
    one.mkdir()
    (one / "a.png").write_bytes(b"x")
    assert discover_cases(one) is None
    dicomdir = tmp_path / "dd"
    (dicomdir / "sub").mkdir(parents=True)
    (dicomdir / "sub" / "x").write_bytes(b"x")
    (dicomdir / "DICOMDIR").write_bytes(b"x")
    assert discover_cases(dicomdir) is None


def test_manifest_cases_stay_inside_the_folder(tmp_path: Path) -> None:
    (tmp_path / "ceph_000.png").write_bytes(b"x")
    (tmp_path / "cbct_001").mkdir()
    for i in range(2):
        (tmp_path / "cbct_001" / f"IM{i}.dcm").write_bytes(b"x")
    lines = [
        {"file": "ceph_000.png", "modality": "DX", "stage": 2},
        {"file": "cbct_001/IM0.dcm", "modality": "CT", "stage": 1},
        {"file": "cbct_001/IM1.dcm", "modality": "CT", "stage": 1},
        {"file": "../outside.png", "modality": "DX"},
        {"no_file": True},
    ]
    text = "\n".join(json.dumps(r) for r in lines) + "\nnot json\n"
    (tmp_path / "manifest.jsonl").write_text(text, encoding="utf-8")
    cases = discover_cases(tmp_path)
    assert cases is not None
    assert [(c.display_name, c.modality) for c in cases] == [
        ("ceph_000.png", "DX"),
        ("cbct_001", "CT"),
    ]
