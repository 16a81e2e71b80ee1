"""Sagittal reformats: which axis is left-right, display orientation, slabs, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sos_core.errors import ParameterError
from sos_core.imaging import Study, open_study
from sos_core.imaging.reformat import lr_axis, sagittal_count, sagittal_slice
from tests.sos_core.imaging.series_fixtures import write_series

AXIAL_DIRECTION = ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0))  # slices +z, rows +y
# Slices run to the right (-x), rows run down (-z), columns run back (+y): a sagittal series.
SAGITTAL_DIRECTION = ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, -1.0, 0.0))
# Slices run forward (-y), rows run down (-z), columns run left (+x): a coronal series.
CORONAL_DIRECTION = ((0.0, 0.0, 1.0), (-1.0, 0.0, 0.0), (0.0, -1.0, 0.0))
# Slices run up (+z), rows run left (+x), columns run back (+y): an axial array transposed.
TRANSPOSED_DIRECTION = ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 0.0, 0.0))


def _volume(
    shape: tuple[int, int, int],
    direction: object,
    spacing: tuple[float, float, float] = (1.0, 0.5, 0.25),
) -> Study:
    return Study(
        pixels=np.zeros(shape, dtype=np.int16),
        kind="volume",
        modality="CT",
        spacing=spacing,
        direction=direction,  # type: ignore[arg-type]
        window=(0.0, 100.0),
    )


def _with_markers(study: Study, superior_anterior: tuple, inferior_posterior: tuple) -> Study:
    pixels = study.pixels.copy()
    pixels[superior_anterior] = 7
    pixels[inferior_posterior] = 3
    return Study(
        pixels=pixels,
        kind="volume",
        modality=study.modality,
        spacing=study.spacing,
        direction=study.direction,
    )


@pytest.mark.parametrize(
    ("direction", "axis"),
    [
        (AXIAL_DIRECTION, 2),
        (SAGITTAL_DIRECTION, 0),
        (CORONAL_DIRECTION, 2),
        (TRANSPOSED_DIRECTION, 1),
        (None, 2),
    ],
)
def test_lr_axis_follows_the_direction(direction: object, axis: int) -> None:
    study = _volume((4, 5, 6), direction)
    assert lr_axis(study) == axis
    assert sagittal_count(study) == (4, 5, 6)[axis]


def test_axial_volume_shows_superior_up_and_face_right() -> None:
    # Axial: superior = last slice (+z), anterior = first row (-y), index 2 on the LR axis.
    study = _with_markers(_volume((6, 8, 5), AXIAL_DIRECTION), (5, 0, 2), (0, 7, 2))
    image = sagittal_slice(study, 2)
    assert image.kind == "image"
    assert image.shape == (6, 8)  # rows: slices (S-I), columns: rows (A-P)
    assert image.pixels[0, -1] == 7  # top right: superior and anterior
    assert image.pixels[-1, 0] == 3  # bottom left: inferior and posterior
    assert image.spacing == (1.0, 0.5)


def test_sagittal_series_shows_the_same_way() -> None:
    # Rows run down (-z) and columns run back (+y): superior = row 0, anterior = column 0.
    study = _with_markers(_volume((3, 6, 8), SAGITTAL_DIRECTION), (1, 0, 0), (1, 5, 7))
    image = sagittal_slice(study, 1)
    assert image.shape == (6, 8)
    assert image.pixels[0, -1] == 7
    assert image.pixels[-1, 0] == 3
    assert image.spacing == (0.5, 0.25)


def test_coronal_series_is_transposed_into_place() -> None:
    # Slices run forward (-y): anterior = last slice; rows run down: superior = row 0.
    study = _with_markers(_volume((7, 6, 5), CORONAL_DIRECTION), (6, 0, 3), (0, 5, 3))
    image = sagittal_slice(study, 3)
    assert image.shape == (6, 7)
    assert image.pixels[0, -1] == 7
    assert image.pixels[-1, 0] == 3
    assert image.spacing == (0.5, 1.0)


def test_left_right_rows_axis() -> None:
    # Superior = last slice, anterior = first column; LR index 2 is a row index.
    study = _with_markers(_volume((6, 5, 8), TRANSPOSED_DIRECTION), (5, 2, 0), (0, 2, 7))
    image = sagittal_slice(study, 2)
    assert image.shape == (6, 8)
    assert image.pixels[0, -1] == 7
    assert image.pixels[-1, 0] == 3


def test_volume_without_direction_is_taken_as_axial() -> None:
    study = _with_markers(_volume((6, 8, 5), None), (5, 0, 1), (0, 7, 1))
    image = sagittal_slice(study, 1)
    assert image.pixels[0, -1] == 7
    assert image.pixels[-1, 0] == 3


def test_dicom_series_marker_lands_top_right(tmp_path: Path) -> None:
    volume = np.zeros((6, 10, 12), dtype=np.uint16)
    volume[5, 1, 4] = 4000  # last slice (most superior), second row (anterior), column 4
    write_series(tmp_path, volume, slice_spacing=2.0)
    image = sagittal_slice(open_study(tmp_path), 4)
    assert np.unravel_index(np.argmax(image.pixels), image.shape) == (0, 8)
    assert image.spacing == (2.0, 0.5)
    assert image.pixels.dtype == np.int16


def test_slab_averages_the_slices_within_half_the_thickness() -> None:
    pixels = np.zeros((4, 5, 9), dtype=np.int16)
    pixels[:, :, 3], pixels[:, :, 4], pixels[:, :, 5] = 10, 20, 60
    study = Study(
        pixels=pixels,
        kind="volume",
        modality="CT",
        spacing=(1.0, 1.0, 0.5),
        direction=AXIAL_DIRECTION,
    )
    assert sagittal_slice(study, 4).pixels[0, 0] == 20
    slab = sagittal_slice(study, 4, slab_mm=1.0)  # +/- 0.5 mm: columns 3, 4 and 5
    assert slab.pixels.dtype == np.float32
    assert slab.pixels[0, 0] == pytest.approx(30.0)
    edge = sagittal_slice(study, 0, slab_mm=1.0)  # clipped at the border
    assert edge.pixels[0, 0] == 0
    assert "slab" in slab.description


@pytest.mark.parametrize("index", [-1, 9])
def test_index_out_of_range_is_refused(index: int) -> None:
    with pytest.raises(ParameterError):
        sagittal_slice(_volume((4, 5, 9), AXIAL_DIRECTION), index)


def test_negative_slab_is_refused() -> None:
    with pytest.raises(ParameterError):
        sagittal_slice(_volume((4, 5, 9), AXIAL_DIRECTION), 2, slab_mm=-1.0)


def test_image_has_no_sagittal_reformat() -> None:
    image = Study(pixels=np.zeros((4, 4), np.int16), kind="image", modality="DX")
    with pytest.raises(ParameterError):
        lr_axis(image)
