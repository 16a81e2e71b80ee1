"""The embedded default model on clear phantom cases of every stage and modality it reads.

Clear: no brackets, whole field of view, a fusion fraction in the middle of its stage. The
subjects come from seeds the preset's dataset does not use (it derives its seeds from 2025
through `case_seed`), rendered here as each modality's renderer draws them.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from sos_core.inference.predictor import Predictor
from sos_core.phantom import draw_subject, render_ceph, render_slice
from sos_core.phantom.writers import ceph_to_uint16, slice_to_uint16
from sos_core.preprocess import input_detail_mm

CASES_PER_STAGE = 6
MID_FRACTION = {0: 0.0, 1: 0.29, 2: 0.72, 3: 1.0}  # the middle of each stage's drawn range
RENDER = {"slice": render_slice, "ceph": render_ceph}
# What the model must get right, per modality: well above chance (25 %) and in line with its
# card's test accuracy (slices about 96 %, cephalograms about 80 % on all test cases).
MIN_ACCURACY = {"slice": 0.9, "ceph": 0.7}


@cache
def _predictor() -> Predictor:
    return Predictor(device="cpu")


TO_FILE_UNITS = {"slice": slice_to_uint16, "ceph": ceph_to_uint16}  # as the dataset's PNGs


@cache
def _stages(modality: str) -> tuple[tuple[int, int], ...]:
    """(true, predicted) for every clear case of `modality`."""
    out = []
    for stage, fraction in MID_FRACTION.items():
        for k in range(CASES_PER_STAGE):
            subject = draw_subject(
                900_000 + 100 * stage + k,
                stage=stage,
                fusion_fraction=fraction,
                bracket_rate=0.0,
                fov_cut_rate=0.0,
            )
            image = RENDER[modality](subject)
            pixels = TO_FILE_UNITS[modality](image).astype(np.float32)
            detail = input_detail_mm(image.pixel_spacing, pixels.shape, _predictor().size)
            p = _predictor().predict_image(pixels, kind=modality, detail_mm=detail)
            out.append((stage, p.stage))
    return tuple(out)


@pytest.mark.parametrize("modality", ["slice", "ceph"])
def test_the_shipped_model_reads_both_modalities(modality: str) -> None:
    assert modality in _predictor().card.modalities


@pytest.mark.parametrize("modality", ["slice", "ceph"])
def test_the_shipped_model_stages_clear_cases(modality: str) -> None:
    pairs = np.array(_stages(modality))
    accuracy = float(np.mean(pairs[:, 0] == pairs[:, 1]))
    assert accuracy >= MIN_ACCURACY[modality], (modality, pairs.tolist())
    for stage in MID_FRACTION:  # no stage is lost: at least half of each is right
        mine = pairs[pairs[:, 0] == stage]
        assert np.mean(mine[:, 1] == stage) >= 0.5, (modality, stage, mine[:, 1].tolist())
    # Never more than one stage off on a clear case.
    assert np.max(np.abs(pairs[:, 0] - pairs[:, 1])) <= 1, (modality, pairs.tolist())
