"""Dataset manifests read for viewing: pixel spacing for rasters, and paths kept in the folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sos_core import dataset_manifest
from sos_core.dataset_manifest import read_cases, spacing_for
from sos_core.worklist import discover_cases


def _manifest(folder: Path, rows: list[dict[str, object] | str]) -> None:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _phantom_like(root: Path) -> Path:
    """The layout `sos phantom` writes: slices/ and cephs/ under the folder with the manifest."""
    (root / "slices").mkdir(parents=True)
    (root / "cephs").mkdir()
    (root / "cbct" / "case_000002").mkdir(parents=True)
    for rel in ("slices/case_000000.png", "cephs/case_000001.png", "cephs/case_000001.dcm"):
        (root / rel).write_bytes(b"x")
    for i in range(2):
        (root / "cbct" / "case_000002" / f"IM{i}.dcm").write_bytes(b"x")
    _manifest(
        root,
        [
            {"file": "slices/case_000000.png", "modality": "slice", "pixel_spacing": [0.9, 0.9]},
            {
                "file": "cephs/case_000001.png",
                "dicom": "cephs/case_000001.dcm",
                "modality": "ceph",
                "pixel_spacing": [0.988583, 0.5],
            },
            {"file": "cbct/case_000002", "modality": "cbct", "pixel_spacing": [1.6, 1.6]},
        ],
    )
    return root


def test_spacing_of_a_phantom_raster_comes_from_the_manifest_above_it(tmp_path: Path) -> None:
    root = _phantom_like(tmp_path / "data")
    assert spacing_for(root / "slices" / "case_000000.png") == (0.9, 0.9)
    assert spacing_for(root / "cephs" / "case_000001.png") == (0.988583, 0.5)
    # a DICOM file's own header wins; a file the manifest does not name has no spacing
    assert spacing_for(root / "cephs" / "case_000001.dcm") is None
    (root / "slices" / "other.png").write_bytes(b"x")
    assert spacing_for(root / "slices" / "other.png") is None
    # no manifest anywhere above
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "a.png").write_bytes(b"x")
    assert spacing_for(tmp_path / "loose" / "a.png") is None


def test_worklist_entries_carry_the_spacing_of_rasters_only(tmp_path: Path) -> None:
    root = _phantom_like(tmp_path / "data")
    cases = discover_cases(root)
    assert cases is not None
    got = {c.display_name: (c.modality, c.pixel_spacing) for c in cases}
    assert got == {
        "case_000000.png": ("slice", (0.9, 0.9)),
        "case_000001.png": ("ceph", (0.988583, 0.5)),
        "case_000002": ("cbct", None),  # a series: its DICOM headers give the spacing
    }


def test_paths_that_leave_the_folder_are_never_trusted(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"x")
    (root / "inside.png").write_bytes(b"x")
    (root / "link.png").symlink_to(outside)
    _manifest(
        root,
        [
            {"file": "../outside.png", "pixel_spacing": [0.1, 0.1]},
            {"file": str(outside), "pixel_spacing": [0.2, 0.2]},
            {"file": "link.png", "pixel_spacing": [0.3, 0.3]},
            {"file": ".", "pixel_spacing": [0.4, 0.4]},
            {"file": "a\u0000b.png"},
            {"file": "inside.png", "pixel_spacing": [0.5, 0.5]},
        ],
    )
    assert [(c.path.name, c.pixel_spacing) for c in read_cases(root)] == [
        ("inside.png", (0.5, 0.5))
    ]
    # the image outside is not given the spacing of a row that names it from inside
    assert spacing_for(outside) is None
    cases = discover_cases(root)
    assert cases is not None
    assert [c.display_name for c in cases] == ["inside.png"]


@pytest.mark.parametrize(
    "value",
    [None, [0.5], [0.5, 0.5, 0.5], [0, 0.5], [-0.5, 0.5], [0.5, 150], ["0.5", "0.5"],
     [True, True], "NaN", {"row": 0.5}],
)  # fmt: skip
def test_implausible_spacing_is_dropped_and_the_case_kept(tmp_path: Path, value: object) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    spacing = "[NaN, 0.5]" if value == "NaN" else json.dumps(value)
    _manifest(tmp_path, [f'{{"file": "a.png", "pixel_spacing": {spacing}}}'])
    (case,) = read_cases(tmp_path)
    assert case.path == (tmp_path / "a.png").resolve()
    assert case.pixel_spacing is None
    assert spacing_for(tmp_path / "a.png") is None


def test_bad_lines_are_skipped_and_an_oversized_manifest_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(b"x")
    _manifest(
        tmp_path,
        [
            "not json",
            {"no_file": True},
            {"file": 7},
            {"file": "a.png", "modality": 3, "pixel_spacing": [1, 2]},
            {"file": "a.png", "pixel_spacing": [9, 9]},  # a repeat: the first row stands
            "",
            {"file": "b.png"},
        ],
    )
    cases = read_cases(tmp_path)
    assert [(c.path.name, c.modality, c.pixel_spacing) for c in cases] == [
        ("a.png", "", (1.0, 2.0)),
        ("b.png", "", None),
    ]
    size = os.path.getsize(tmp_path / "manifest.jsonl")
    monkeypatch.setattr(dataset_manifest, "MAX_MANIFEST_BYTES", size - 1)
    assert read_cases(tmp_path) == []
    assert spacing_for(tmp_path / "a.png") is None
