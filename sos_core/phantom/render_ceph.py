"""Lateral cephalograms: line integrals through the whole head from a point source.

The head is painted on a coarse stack of sagittal planes (2 mm apart, about the detector pixel
in-plane); each plane is resampled onto the detector with its own magnification (divergent
beam, so left and right structures superimpose with slightly different sizes) and the
attenuation is summed. The log-attenuation is windowed to 0..1 with a gamma, like a film curve, with
quantum noise and detector blur. Display orientation: face on the right.
"""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np

from sos_core.phantom import artefacts
from sos_core.phantom.anatomy import Head, build_head
from sos_core.phantom.materials import AIR
from sos_core.phantom.painter import Grid, paint
from sos_core.phantom.params import SubjectParams, subject_rng
from sos_core.phantom.records import PhantomImage
from sos_core.phantom.render_slice import (
    DEFAULT_SIZE,
    DEFAULT_SPACING_MM,
    check_size,
    check_spacing,
)
from sos_core.phantom.sos_band import BOX_MARGIN_MM, BOX_MIN_SIDE_MM, sos_box

logger = logging.getLogger(__name__)

SOURCE_TO_MIDPLANE_MM = 1524.0  # the classic 5-foot cephalostat distance
MIDPLANE_TO_DETECTOR_MM = 150.0
HALF_WIDTH_MM = 86.0  # lateral extent of the painted head
DEPTH_STEP_MM = 1.0
MU_WATER_PER_MM = 0.02
FILM_LOW, FILM_HIGH = 0.3, 5.6  # log attenuation shown as black and as white
FILM_GAMMA = 1.3
PHOTONS = 3.0e4  # per pixel at the unattenuated detector
CEPH_TILT_RESIDUAL = 0.5  # ear rods limit yaw and roll


def render_ceph(
    subject: SubjectParams,
    *,
    size: int | tuple[int, int] = DEFAULT_SIZE,
    spacing: float | tuple[float, float] = DEFAULT_SPACING_MM,
    artefacts_on: bool = True,
    head: Head | None = None,
) -> PhantomImage:
    """Render a lateral cephalogram of `subject`.

    Parameters
    ----------
    size
        Detector pixels (rows, cols); default 256 x 256.
    spacing
        mm per pixel on the mid-sagittal plane; the detector spacing (reported as
        `pixel_spacing`) is this times the magnification (about 1.1).
    artefacts_on
        False gives a noiseless, unblurred projection.
    head
        A prebuilt `build_head(subject, tilt_residual=CEPH_TILT_RESIDUAL)` to reuse.
    """
    rows, cols = check_size(size)
    q = check_spacing(spacing)
    head = head if head is not None else build_head(subject, tilt_residual=CEPH_TILT_RESIDUAL)
    x_src = head.midline_x_mm - SOURCE_TO_MIDPLANE_MM
    sid = SOURCE_TO_MIDPLANE_MM + MIDPLANE_TO_DETECTOR_MM
    m0 = sid / SOURCE_TO_MIDPLANE_MM
    pd = (q[0] * m0, q[1] * m0)  # detector spacing
    xs = (
        head.midline_x_mm
        - HALF_WIDTH_MM
        + DEPTH_STEP_MM * (np.arange(int(2 * HALF_WIDTH_MM / DEPTH_STEP_MM)) + 0.5)
    )
    m_min = sid / (xs[-1] - x_src)
    prow, pcol = int(math.ceil(rows * m0 / m_min)) + 2, int(math.ceil(cols * m0 / m_min)) + 2
    top = ((pcol - 1) / 2 * q[1], (prow - 1) / 2 * q[0])  # plane (y, z) of pixel [0, 0]
    grid = Grid(
        shape=(len(xs), prow, pcol),
        origin=np.array([xs[0], top[0], top[1]]),
        steps=np.array([[DEPTH_STEP_MM, 0, 0], [0, 0, -q[0]], [0, -q[1], 0]], dtype=np.float64),
    )
    planes = np.full(grid.shape, AIR, np.float32)
    paint(planes, grid, head.shapes)
    head.band.paint(planes, grid)
    mu = np.maximum(
        planes * np.float32(MU_WATER_PER_MM / 1000.0) + np.float32(MU_WATER_PER_MM), 0.0
    )
    det_top = ((cols - 1) / 2 * pd[1], (rows - 1) / 2 * pd[0])
    line = np.zeros((rows, cols), np.float32)
    for i, x in enumerate(xs):
        m = sid / (x - x_src)
        sc, sr = pd[1] / (m * q[1]), pd[0] / (m * q[0])
        warp = np.array(
            [
                [sc, 0.0, (top[0] - det_top[0] / m) / q[1]],
                [0.0, sr, (top[1] - det_top[1] / m) / q[0]],
            ],
            dtype=np.float64,
        )
        line += cv2.warpAffine(
            mu[i],
            warp,
            (cols, rows),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0.0,
        )
    line *= np.float32(DEPTH_STEP_MM)
    if artefacts_on:
        _detector(line, subject, pd)
    image = np.clip(
        (line - np.float32(FILM_LOW)) / np.float32(FILM_HIGH - FILM_LOW), 0.0, 1.0
    ) ** np.float32(FILM_GAMMA)
    return PhantomImage(
        image=image,
        modality="ceph",
        pixel_spacing=pd,
        stage=subject.stage,
        fusion_fraction=subject.fusion_fraction,
        sos_box=_ceph_box(head, x_src, sid, pd, det_top, m0),
        subject=subject,
        magnification=m0,
    )


def _detector(line: np.ndarray, p: SubjectParams, pd: tuple[float, float]) -> None:
    """Quantum noise (stronger behind dense bone) and detector blur, in place."""
    rng = subject_rng(p.seed, 4)
    counts = np.float32(PHOTONS) * np.exp(-line)
    sd = 1.0 / np.sqrt(np.maximum(counts, 1.0))
    line += sd * rng.standard_normal(line.shape, dtype=np.float32)
    sig = 0.35 + 0.5 * p.acq.blur_mm / 0.8
    line[...] = artefacts.blur(line, (sig, sig))


def _ceph_box(
    head: Head,
    x_src: float,
    sid: float,
    pd: tuple[float, float],
    det_top: tuple[float, float],
    m0: float,
) -> tuple[float, float, float, float]:
    """The SOS box on the detector: the band's points projected from the source."""
    pts = head.band.points()
    m = sid / (pts[:, 0] - x_src)
    cols = (det_top[0] - pts[:, 1] * m) / pd[1]
    rows = (det_top[1] - pts[:, 2] * m) / pd[0]
    return sos_box(rows, cols, pd, margin_mm=BOX_MARGIN_MM * m0, min_side_mm=BOX_MIN_SIDE_MM * m0)
