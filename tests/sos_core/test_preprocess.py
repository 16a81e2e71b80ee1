"""The shared preprocessing: intensity mapping, letterbox geometry and crops."""

from __future__ import annotations

import numpy as np
import pytest

from sos_core.errors import ParameterError
from sos_core.preprocess import crop_box, letterbox, normalise_intensity, prepare_image


def test_normalisation_ignores_offsets_and_scale() -> None:
    rng = np.random.default_rng(1)
    hu = rng.normal(0, 400, (64, 80)).astype(np.float32)
    a = normalise_intensity(hu)
    b = normalise_intensity(hu + 1024)
    c = normalise_intensity(hu * 16)
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(a, c, atol=1e-5)
    assert a.dtype == np.float32
    assert a.min() == 0.0
    assert a.max() == 1.0


def test_normalisation_of_flat_image_is_defined() -> None:
    out = normalise_intensity(np.full((8, 8), 7, np.uint16))
    assert np.all(out == 0.0)


@pytest.mark.parametrize("bad", [np.zeros(10), np.zeros((1, 5)), np.full((4, 4), np.nan)])
def test_normalisation_rejects_bad_images(bad: np.ndarray) -> None:
    with pytest.raises(ParameterError):
        normalise_intensity(bad)


def test_letterbox_keeps_aspect_and_maps_boxes_both_ways() -> None:
    img = np.ones((100, 200), np.float32)
    out, lb = letterbox(img, 64)
    assert out.shape == (64, 64)
    assert lb.scale == pytest.approx(0.32)
    assert lb.pad_x == 0
    assert lb.pad_y == 16
    # the image occupies exactly rows 16..48
    assert out[16:48].min() == pytest.approx(1.0)
    assert out[:16].max() == 0.0
    assert out[48:].max() == 0.0
    box = (50.0, 20.0, 150.0, 60.0)
    there = lb.box_to_input(box)
    assert there == pytest.approx((16.0, 22.4, 48.0, 35.2))
    assert lb.box_to_image(there) == pytest.approx(box)


def test_letterbox_box_lands_on_the_same_content() -> None:
    img = np.zeros((120, 90), np.float32)
    img[40:60, 30:50] = 1.0  # a bright square
    out, lb = letterbox(img, 240)
    x0, y0, x1, y1 = (round(v) for v in lb.box_to_input((30, 40, 50, 60)))
    inside = out[y0:y1, x0:x1]
    assert inside.mean() > 0.95
    assert out.sum() == pytest.approx(inside.sum(), rel=0.05)


def test_crop_box_reads_the_box_exactly() -> None:
    img = np.zeros((50, 50), np.float32)
    img[10:20, 30:40] = 1.0
    crop = crop_box(img, (30, 10, 40, 20), 20)
    assert crop.shape == (20, 20)
    assert crop[1:-1, 1:-1].min() == pytest.approx(1.0)
    # with context 2 the square occupies the middle half
    wide = crop_box(img, (30, 10, 40, 20), 20, context=2.0)
    assert wide[6:14, 6:14].min() == pytest.approx(1.0)
    assert wide[:4].max() == pytest.approx(0.0)


def test_crop_outside_image_reads_zero() -> None:
    img = np.ones((10, 10), np.float32)
    crop = crop_box(img, (20, 20, 30, 30), 8)
    assert crop.max() == 0.0


def test_crop_rejects_empty_box() -> None:
    with pytest.raises(ParameterError):
        crop_box(np.ones((10, 10), np.float32), (5, 5, 5, 8), 8)


def test_prepare_image_is_deterministic_and_in_range() -> None:
    rng = np.random.default_rng(3)
    img = rng.integers(0, 4096, (90, 70)).astype(np.uint16)
    a, lba = prepare_image(img, 32)
    b, lbb = prepare_image(img.copy(), 32)
    assert np.array_equal(a, b)
    assert lba == lbb
    assert a.min() >= 0.0
    assert a.max() <= 1.0
