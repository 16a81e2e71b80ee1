"""Export composition: windowing, overlay blending and aspect, checked by hand-computed pixels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from sos_desktop.export import (
    DISCLAIMER,
    MIN_EXPORT_WIDTH,
    ExportFailed,
    ExportRequest,
    compose_rgb,
    write_png,
)


def _req(**kw: Any) -> ExportRequest:
    base: dict[str, Any] = {
        "pixels": np.array([[0, 100], [50, 200]], np.int16),
        "window": (50.0, 100.0),
        "spacing": None,
        "cam": None,
        "lut": None,
        "opacity": 0.5,
        "suggested_box": None,
        "crop_box": None,
        "title": "SOS Review \u2014 case-x",
        "lines": ("Model version v9", "Reviewed stage 2 by Dr A"),
    }
    base.update(kw)
    return ExportRequest(**base)


def test_window_maps_to_grey_and_small_images_are_enlarged() -> None:
    rgb, sx, sy = compose_rgb(_req())
    k = MIN_EXPORT_WIDTH / 2
    assert (sx, sy) == (k, k)
    assert rgb.shape == (MIN_EXPORT_WIDTH, MIN_EXPORT_WIDTH, 3)
    # window 0..100: 0 -> black, 100 and 200 -> white (clipped), 50 -> mid grey
    assert rgb[0, 0].tolist() == [0, 0, 0]
    assert rgb[0, -1].tolist() == [255, 255, 255]
    assert rgb[-1, 0].tolist() == [127, 127, 127]
    assert rgb[-1, -1].tolist() == [255, 255, 255]


def test_overlay_blends_with_the_lut_alpha_and_opacity() -> None:
    lut = np.zeros((256, 4), np.uint8)
    lut[255] = (255, 0, 0, 255)  # full attention: opaque red; 0: transparent
    cam = np.array([[1.0, 0.0], [0.0, 0.0]], np.float32)
    rgb, _, _ = compose_rgb(_req(cam=cam, lut=lut, opacity=0.5))
    assert rgb[0, 0].tolist() == [127, 0, 0]  # black * 0.5 + red * 0.5
    assert rgb[0, -1].tolist() == [255, 255, 255]  # untouched where attention is 0


def test_non_square_pixels_are_exported_at_true_aspect() -> None:
    pixels = np.zeros((100, 800), np.int16)
    rgb, sx, sy = compose_rgb(_req(pixels=pixels, spacing=(0.4, 0.1)))
    assert (sx, sy) == (1.0, 4.0)
    assert rgb.shape[:2] == (400, 800)


def test_png_has_a_footer_and_unwritable_paths_raise_a_typed_error(tmp_path: Path) -> None:
    out = write_png(_req(pixels=np.zeros((300, 700), np.int16)), tmp_path / "x.png")
    img = np.asarray(Image.open(out).convert("L"))
    assert img.shape[1] == 700
    assert img.shape[0] > 300 + 3 * 15  # title, two lines and the disclaimer below the image
    assert img[300:].max() > 200  # footer text is drawn light on dark
    assert "not a clinical device" in DISCLAIMER
    with pytest.raises(ExportFailed, match="could not be written"):
        write_png(_req(), tmp_path / "missing-folder" / "x.png")
