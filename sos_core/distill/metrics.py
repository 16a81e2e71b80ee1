"""Evaluation metrics for stage classification, calibration and explanation (numpy only).

Labels and predictions are integer arrays of stage indices (0 .. C-1); probabilities are N x C
rows summing to 1; logits N x C. Definitions follow scikit-learn where one exists (so published
figures compare), with zero_division = 0: a class never predicted has precision 0.
Torch tensors on the CPU are accepted wherever arrays are (`np.asarray`).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Literal

import numpy as np

from sos_core.errors import ParameterError

logger = logging.getLogger(__name__)

Average = Literal["macro", "weighted"]


def _labels(y: Any, num_classes: int) -> np.ndarray:
    arr = np.asarray(y).astype(np.int64).ravel()
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise ParameterError(f"stage indices must lie between 0 and {num_classes - 1}.")
    return arr


def _pair(y_true: Any, y_pred: Any, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    t, p = _labels(y_true, num_classes), _labels(y_pred, num_classes)
    if t.shape != p.shape or t.size == 0:
        raise ParameterError("labels and predictions must be non-empty and of equal length.")
    return t, p


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Share of predictions equal to the label."""
    t, p = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if t.shape != p.shape or t.size == 0:
        raise ParameterError("labels and predictions must be non-empty and of equal length.")
    return float(np.mean(t == p))


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int) -> np.ndarray:
    """C x C counts (int64): rows are the true stage, columns the predicted stage."""
    t, p = _pair(y_true, y_pred, num_classes)
    return np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def per_class_precision_recall_f1(
    y_true: Any, y_pred: Any, num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, f1, support) per class; 0 where a denominator is 0."""
    cm = confusion_matrix(y_true, y_pred, num_classes).astype(np.float64)
    tp = np.diag(cm)
    predicted, support = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1, support.astype(np.int64)


def precision_recall_f1(
    y_true: Any, y_pred: Any, num_classes: int, average: Average = "macro"
) -> tuple[float, float, float]:
    """Averaged (precision, recall, F1) over all `num_classes` classes.

    "macro": unweighted mean of the per-class values; "weighted": mean weighted by each class's
    support (weighted recall equals accuracy). F1 is averaged per class, as scikit-learn does,
    not computed from the averaged precision and recall.
    """
    precision, recall, f1, support = per_class_precision_recall_f1(y_true, y_pred, num_classes)
    if average == "macro":
        weights = np.full(num_classes, 1.0 / num_classes)
    elif average == "weighted":
        weights = support / support.sum()
    else:
        raise ParameterError("average must be 'macro' or 'weighted'.")
    return (
        float(np.sum(weights * precision)),
        float(np.sum(weights * recall)),
        float(np.sum(weights * f1)),
    )


def quadratic_weighted_kappa(y_true: Any, y_pred: Any, num_classes: int) -> float:
    """Cohen's kappa with quadratic weights w_ij = (i - j)² / (C - 1)², for ordinal stages.

    κ = 1 - Σ w·O / Σ w·E, with O the confusion matrix and E the outer product of its marginals
    scaled to the same total. 1 = perfect, 0 = chance; returns 1.0 if Σ w·E is 0 (a single
    class everywhere, where chance and perfect agreement coincide).
    """
    observed = confusion_matrix(y_true, y_pred, num_classes).astype(np.float64)
    n = observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / n
    idx = np.arange(num_classes)
    weights = (idx[:, None] - idx[None, :]) ** 2 / max(num_classes - 1, 1) ** 2
    denom = float(np.sum(weights * expected))
    if denom == 0.0:
        return 1.0
    return float(1.0 - np.sum(weights * observed) / denom)


def _probabilities(probs: Any) -> np.ndarray:
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ParameterError("probabilities must be an N x C table with N > 0.")
    return arr


def expected_calibration_error(probs: Any, y_true: Any, n_bins: int = 15) -> float:
    """ECE of the top-class confidence (Guo et al., "On Calibration of Modern Neural
    Networks", ICML 2017): Σ_b |B_b|/N · |acc(B_b) - conf(B_b)|.

    Confidence = the largest probability; `n_bins` equal-width bins, bin b = (b/n, (b+1)/n]
    (a confidence of exactly 0 goes to the first bin); empty bins contribute nothing.
    """
    p = _probabilities(probs)
    t = _labels(y_true, p.shape[1])
    if t.shape[0] != p.shape[0]:
        raise ParameterError("there must be one label per probability row.")
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == t).astype(np.float64)
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def pointing_game(cams: Any, boxes: Any, *, tolerance: float = 0.0) -> float:
    """Share of maps whose peak lies inside the true box (Zhang et al., ECCV 2016).

    See `pointing_hits` for the arguments.
    """
    return float(pointing_hits(cams, boxes, tolerance=tolerance).mean())


def pointing_hits(cams: Any, boxes: Any, *, tolerance: float = 0.0) -> np.ndarray:
    """Per map, whether its peak lies inside the true box (the pointing game's hits).

    cams: N x H x W maps; boxes: N x 4 [x0, y0, x1, y1] in the maps' pixel coordinates
    (continuous: pixel (r, c) has its centre at (c + 0.5, r + 0.5)). The peak is the first
    maximum in row-major order; it hits when its centre is inside the box grown by `tolerance`
    pixels on each side (the original uses 15 px; 0 is strict). A map with no positive value
    counts as a miss.
    """
    maps = np.asarray(cams, dtype=np.float64)
    box = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if maps.ndim != 3 or box.shape[0] != maps.shape[0] or maps.shape[0] == 0:
        raise ParameterError("cams must be N x H x W with one box per map.")
    flat = maps.reshape(maps.shape[0], -1)
    peak = flat.argmax(axis=1)
    rows, cols = np.divmod(peak, maps.shape[2])
    cx, cy = cols + 0.5, rows + 0.5
    return (
        (cx >= box[:, 0] - tolerance)
        & (cx <= box[:, 2] + tolerance)
        & (cy >= box[:, 1] - tolerance)
        & (cy <= box[:, 3] + tolerance)
        & (flat.max(axis=1) > 0)
    )


def _log_softmax(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def nll(logits: Any, labels: Any, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of softmax(logits / temperature) at the labels."""
    z = np.asarray(logits, dtype=np.float64)
    t = _labels(labels, z.shape[1])
    return float(-np.mean(_log_softmax(z / temperature)[np.arange(len(t)), t]))


def fit_temperature(
    logits: Any, labels: Any, *, bounds: tuple[float, float] = (0.05, 20.0), tol: float = 1e-6
) -> float:
    """The temperature T minimising validation NLL of softmax(logits / T) (Guo et al. 2017).

    NLL is convex in β = 1/T (a log-sum-exp minus a linear term), so a golden-section search
    over β in [1/bounds[1], 1/bounds[0]] finds the global minimum. The result never raises the
    NLL above that of T = 1: if it would (only possible at the bounds), 1.0 is returned.
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] == 0:
        raise ParameterError("logits must be an N x C table with N > 0.")
    t = _labels(labels, z.shape[1])
    lo_t, hi_t = bounds
    if not 0 < lo_t < 1.0 < hi_t:
        raise ParameterError("temperature bounds must satisfy 0 < low < 1 < high.")

    def loss(beta: float) -> float:
        return nll(z, t, 1.0 / beta)

    a, b = 1.0 / hi_t, 1.0 / lo_t
    ratio = (math.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = loss(c), loss(d)
    while b - a > tol:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = loss(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = loss(d)
    best = 1.0 / ((a + b) / 2)
    return best if loss(1.0 / best) <= loss(1.0) else 1.0


def classification_report(
    y_true: Any, probs: Any, num_classes: int, *, n_bins: int = 15
) -> dict[str, Any]:
    """All stage metrics of one evaluation, as a JSON-able dict (for `sos evaluate`)."""
    p = _probabilities(probs)
    pred = p.argmax(axis=1)
    macro = precision_recall_f1(y_true, pred, num_classes, "macro")
    weighted = precision_recall_f1(y_true, pred, num_classes, "weighted")
    return {
        "n": int(p.shape[0]),
        "accuracy": accuracy(y_true, pred),
        "precision_macro": macro[0],
        "recall_macro": macro[1],
        "f1_macro": macro[2],
        "precision_weighted": weighted[0],
        "recall_weighted": weighted[1],
        "f1_weighted": weighted[2],
        "kappa_quadratic": quadratic_weighted_kappa(y_true, pred, num_classes),
        "ece": expected_calibration_error(p, y_true, n_bins),
        "confusion_matrix": confusion_matrix(y_true, pred, num_classes).tolist(),
    }
