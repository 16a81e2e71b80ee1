"""Review flags: when a prediction must be looked at by an expert, and why, in words."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sos_core.inference.review_stats import ReviewStats


@dataclass(frozen=True, slots=True)
class Attention:
    """Where the map's mass is: share in the expected SOS region, in the peak's component."""

    region_mass: float
    compactness: float
    peak: tuple[float, float]  # x, y in input pixels (mass centre of the peak component)


def attention_summary(cam: np.ndarray, stats: ReviewStats | None) -> Attention:
    """Measure a [0, 1] map (input resolution) against the expected SOS region."""
    total = float(cam.sum())
    if total <= 0:
        return Attention(0.0, 0.0, (cam.shape[1] / 2, cam.shape[0] / 2))
    mask = (cam >= 0.5 * cam.max()).astype(np.uint8)
    _, comp = cv2.connectedComponents(mask, connectivity=8)
    py, px = np.unravel_index(int(np.argmax(cam)), cam.shape)
    peak_comp = comp == comp[py, px]
    weights = cam * peak_comp
    ys, xs = np.nonzero(peak_comp)
    w = weights[ys, xs]
    centre = (float((xs * w).sum() / w.sum()) + 0.5, float((ys * w).sum() / w.sum()) + 0.5)
    compactness = float(weights.sum() / total)
    if stats is None:
        return Attention(1.0, compactness, centre)
    size = cam.shape[0]
    cx, cy = stats.region_center * size
    half = (3 * stats.region_spread + stats.box_size) * size
    x0, x1 = int(max(0, cx - half[0])), int(min(size, cx + half[0] + 1))
    y0, y1 = int(max(0, cy - half[1])), int(min(size, cy + half[1] + 1))
    region_mass = float(cam[y0:y1, x0:x1].sum() / total)
    return Attention(region_mass, compactness, centre)


def image_problem(image01: np.ndarray) -> str | None:
    """A sentence when simple statistics say the image cannot be a cranial-base view."""
    h, w = image01.shape
    if max(h, w) / max(1, min(h, w)) > 3:
        return "The image is a long thin strip, not a view of the head; it cannot be staged."
    if min(h, w) < 32:
        return "The image is too small (under 32 pixels) to show the cranial base."
    if float(image01.std()) < 0.02 or float(np.ptp(image01)) < 0.05:
        return "The image is nearly uniform (blank or empty); it cannot be staged."
    return None


def review_flags(
    probabilities: np.ndarray,
    attention: Attention,
    ood_score: float | None,
    image_sentence: str | None,
    stats: ReviewStats | None,
    stage_names: tuple[str, ...],
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(flags, messages) for one prediction, in the order of FLAG_NAMES."""
    flags: list[str] = []
    messages: list[str] = []
    top = np.argsort(probabilities)[::-1]
    p1, p2 = float(probabilities[top[0]]), float(probabilities[top[1]])
    low = stats.low_confidence if stats else 0.6
    margin = stats.between_margin if stats else 0.2
    if p1 < low:
        flags.append("low_confidence")
        messages.append(
            f"The model is unsure (best stage only {p1:.0%} likely); please stage this case "
            "yourself."
        )
    a, b = sorted((int(top[0]), int(top[1])))
    if b - a == 1 and p1 - p2 < margin:
        flags.append("between_stages")
        messages.append(
            f"The image lies between stages {a} and {b} ({stage_names[a]} / {stage_names[b]})."
        )
    off_target = stats is not None and (
        attention.region_mass < stats.min_region_mass
        or attention.compactness < stats.min_compactness
    )
    if off_target:
        flags.append("attention_off_target")
        messages.append(
            "The model's attention is off the cranial base (or spread over several places); "
            "check the highlighted region before trusting the stage."
        )
    if image_sentence is not None:
        flags.append("unsuitable_image")
        messages.append(image_sentence)
    elif (
        stats is not None
        and ood_score is not None
        and (
            ood_score > stats.ood_threshold
            # Two weaker signs together: features in the outer tenth of the clean validation images
            # and attention nowhere near the cranial base (0 of 150 clean validation images of the
            # both-modality student; all of pydicom's non-skull test images).
            or (off_target and ood_score > stats.ood_soft_threshold)
        )
    ):
        flags.append("unsuitable_image")
        messages.append(
            "The image does not look like the views the model was trained on (a mid-sagittal "
            "CBCT slice or a lateral cephalogram of the head); the stage is unreliable."
        )
    return tuple(flags), tuple(messages)
