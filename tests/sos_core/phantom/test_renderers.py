"""Every renderer reports an SOS box that contains the band, in every pose; the pictures hold
the expected tissues; bad sizes are refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sos_core.errors import ParameterError
from sos_core.phantom.params import draw_subject
from sos_core.phantom.render_ceph import render_ceph
from sos_core.phantom.render_slice import render_slice
from sos_core.phantom.render_volume import render_volume
from tests.sos_core.phantom.helpers import POSES, posed, without_band


def _inside(mask: np.ndarray, box: tuple[float, float, float, float]) -> bool:
    """True when some pixels are set and every set pixel's centre lies in the box."""
    rows, cols = np.nonzero(mask)
    x0, y0, x1, y1 = box
    xc, yc = cols + 0.5, rows + 0.5
    return bool(rows.size) and bool(np.all((xc >= x0) & (xc <= x1) & (yc >= y0) & (yc <= y1)))


@pytest.mark.parametrize("pose", POSES)
@pytest.mark.parametrize("offset", [0.0, 2.5])
def test_slice_box_contains_the_band(pose: dict[str, float], offset: float) -> None:
    p = posed(11, 0, **dict(pose))
    with_band = render_slice(p, size=160, spacing=1.2, offset_mm=offset, artefacts_on=False)
    plain = render_slice(
        without_band(p), size=160, spacing=1.2, offset_mm=offset, artefacts_on=False
    )
    changed = with_band.image != plain.image
    assert changed.sum() > 5, "the open band must show"
    assert _inside(changed, with_band.sos_box)
    x0, y0, x1, y1 = with_band.sos_box
    assert max(x1 - x0, y1 - y0) * 1.2 < 45, "the box is a small region"


@pytest.mark.parametrize("pose", POSES[1:3])
def test_volume_box_contains_the_band_on_the_midsagittal_slice(pose: dict[str, float]) -> None:
    p = posed(12, 0, **dict(pose))
    v = render_volume(p, size=(96, 96, 80), spacing=(2.4, 2.4, 2.0), artefacts_on=False)
    plain = render_volume(
        without_band(p), size=(96, 96, 80), spacing=(2.4, 2.4, 2.0), artefacts_on=False
    )
    changed = v.sagittal() != plain.sagittal()
    assert _inside(changed, v.sos_box)
    assert abs(v.midline_x_mm - p.pose.shift_mm[0]) < 1e-9


@pytest.mark.parametrize("pose", POSES[:3])
def test_ceph_box_contains_the_band_projection(pose: dict[str, float]) -> None:
    p = posed(13, 0, **dict(pose))
    c = render_ceph(p, size=96, spacing=2.4, artefacts_on=False)
    plain = render_ceph(without_band(p), size=96, spacing=2.4, artefacts_on=False)
    changed = np.abs(c.image - plain.image) > 1e-3
    assert _inside(changed, c.sos_box)
    assert c.magnification == pytest.approx(1.0984, abs=1e-3)


def test_fusion_changes_only_the_box() -> None:
    """Stage 0 and stage 2 renders of one head differ inside the SOS box and nowhere else."""
    p0 = draw_subject(21, stage=0)
    p2 = dataclasses.replace(p0, stage=2, sos=dataclasses.replace(p0.sos, fusion_fraction=0.7))
    a, b = render_slice(p0), render_slice(p2)
    changed = np.abs(a.image - b.image) > 0
    assert _inside(changed, a.sos_box)
    assert a.sos_box == b.sos_box


def test_slice_shows_bone_air_and_soft_tissue() -> None:
    img = render_slice(draw_subject(3), artefacts_on=False).image
    assert img.shape == (256, 256)
    assert img.dtype == np.float32
    assert not img.flags.writeable
    assert (img > 1300).mean() > 0.01  # cortical bone
    assert (img < -900).mean() > 0.1  # air around the head, sinuses, airway
    assert ((img > 0) & (img < 100)).mean() > 0.3  # brain and soft tissue
    # face on the right: the right half holds the teeth (enamel)
    assert (img[:, 128:] > 2000).sum() > (img[:, :128] > 2000).sum()


def test_ceph_superimposes_both_sides() -> None:
    c = render_ceph(draw_subject(4), size=128, spacing=1.8)
    assert c.modality == "ceph"
    assert c.image.shape == (128, 128)
    assert c.image.min() >= 0.0
    assert c.image.max() <= 1.0
    assert c.image[:, :8].mean() < 0.1  # air behind the head is dark


@pytest.mark.parametrize("size", [-5, 0, 3, (10, 20, 30)])
def test_bad_slice_size_is_refused(size: object) -> None:
    with pytest.raises(ParameterError, match="size"):
        render_slice(draw_subject(1), size=size)  # type: ignore[arg-type]


@pytest.mark.parametrize("spacing", [-1.0, 0.0, float("nan")])
def test_bad_spacing_is_refused(spacing: float) -> None:
    with pytest.raises(ParameterError, match="spacing"):
        render_slice(draw_subject(1), spacing=spacing)
    with pytest.raises(ParameterError, match="spacing"):
        render_volume(draw_subject(1), size=16, spacing=spacing)


def test_bad_volume_size_is_refused() -> None:
    with pytest.raises(ParameterError, match="size"):
        render_volume(draw_subject(1), size=-64)


def test_slice_far_from_the_midline_has_no_box() -> None:
    with pytest.raises(ParameterError, match="does not cross the synchondrosis"):
        render_slice(draw_subject(1), offset_mm=35.0)
