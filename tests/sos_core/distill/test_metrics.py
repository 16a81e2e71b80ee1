"""Evaluation metrics against values worked out by hand (comments show the arithmetic)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sos_core.distill.metrics import (
    accuracy,
    classification_report,
    confusion_matrix,
    expected_calibration_error,
    fit_temperature,
    nll,
    per_class_precision_recall_f1,
    pointing_game,
    precision_recall_f1,
    quadratic_weighted_kappa,
)
from sos_core.errors import ParameterError

# Four balanced classes. Confusion matrix (rows true, columns predicted):
#   [[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 1, 1], [1, 0, 0, 1]]
Y4_TRUE = [0, 0, 1, 1, 2, 2, 3, 3]
Y4_PRED = [0, 1, 1, 1, 2, 3, 3, 0]
# Two unbalanced classes: [[2, 1], [0, 1]]
Y2_TRUE = [0, 0, 0, 1]
Y2_PRED = [0, 0, 1, 1]


def test_accuracy_and_confusion_matrix() -> None:
    assert accuracy(Y4_TRUE, Y4_PRED) == pytest.approx(5 / 8)
    cm = confusion_matrix(Y4_TRUE, Y4_PRED, 4)
    assert cm.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 1, 1], [1, 0, 0, 1]]
    assert cm.dtype == np.int64


def test_per_class_values() -> None:
    p, r, f1, support = per_class_precision_recall_f1(Y4_TRUE, Y4_PRED, 4)
    np.testing.assert_allclose(p, [1 / 2, 2 / 3, 1, 1 / 2])
    np.testing.assert_allclose(r, [1 / 2, 1, 1 / 2, 1 / 2])
    np.testing.assert_allclose(f1, [1 / 2, 4 / 5, 2 / 3, 1 / 2])
    assert support.tolist() == [2, 2, 2, 2]


def test_macro_averages() -> None:
    p, r, f1 = precision_recall_f1(Y4_TRUE, Y4_PRED, 4, "macro")
    assert p == pytest.approx(2 / 3)  # (1/2 + 2/3 + 1 + 1/2) / 4
    assert r == pytest.approx(5 / 8)  # (1/2 + 1 + 1/2 + 1/2) / 4
    assert f1 == pytest.approx(37 / 60)  # (1/2 + 4/5 + 2/3 + 1/2) / 4


def test_weighted_averages() -> None:
    # P = (1, 1/2), R = (2/3, 1), F1 = (4/5, 2/3), support (3, 1)
    p, r, f1 = precision_recall_f1(Y2_TRUE, Y2_PRED, 2, "weighted")
    assert p == pytest.approx(7 / 8)
    assert r == pytest.approx(3 / 4)  # weighted recall = accuracy
    assert f1 == pytest.approx(23 / 30)


def test_absent_predicted_class_counts_zero_precision() -> None:
    p, _, f1 = precision_recall_f1([0, 1, 2], [0, 0, 0], 3, "macro")
    assert p == pytest.approx((1 / 3) / 3)
    assert f1 == pytest.approx((2 * (1 / 3) / (4 / 3)) / 3)  # only class 0 has F1 = 1/2


def test_quadratic_kappa_by_hand() -> None:
    # Σ w·O = (1 + 1)/9 + 9/9 = 11/9; E rows = (0.5, 0.75, 0.25, 0.5); Σ w·E = 20/9
    assert quadratic_weighted_kappa(Y4_TRUE, Y4_PRED, 4) == pytest.approx(1 - 11 / 20)
    # binary: equals Cohen's kappa (p_o = 3/4, p_e = 1/2)
    assert quadratic_weighted_kappa(Y2_TRUE, Y2_PRED, 2) == pytest.approx(0.5)
    assert quadratic_weighted_kappa(Y4_TRUE, Y4_TRUE, 4) == pytest.approx(1.0)
    # a distant mistake costs more than an adjacent one
    near = quadratic_weighted_kappa([0, 1, 2, 3], [1, 1, 2, 3], 4)
    far = quadratic_weighted_kappa([0, 1, 2, 3], [3, 1, 2, 3], 4)
    assert near > far


def test_ece_by_hand() -> None:
    probs = [[0.9, 0.1], [0.25, 0.75], [0.3, 0.7], [0.55, 0.45]]
    labels = [0, 0, 1, 0]  # correct, wrong, correct, correct; four different bins of 15
    expected = (0.1 + 0.75 + 0.3 + 0.45) / 4
    assert expected_calibration_error(probs, labels) == pytest.approx(expected)
    # two samples in one bin: |acc 1/2 - conf 0.91|
    assert expected_calibration_error([[0.9, 0.1], [0.92, 0.08]], [0, 1]) == pytest.approx(0.41)
    # one bin: |overall accuracy - mean confidence|
    one = expected_calibration_error(probs, labels, n_bins=1)
    assert one == pytest.approx(abs(3 / 4 - (0.9 + 0.75 + 0.7 + 0.55) / 4))


def test_pointing_game_by_hand() -> None:
    cams = np.zeros((3, 3, 4))
    cams[0, 1, 2] = 1.0  # peak centre (2.5, 1.5)
    cams[1, 0, 0] = 1.0  # peak centre (0.5, 0.5)
    boxes = [[2, 1, 3, 2], [1, 1, 4, 3], [0, 0, 4, 3]]  # third map is all zero: a miss
    assert pointing_game(cams, boxes) == pytest.approx(1 / 3)
    assert pointing_game(cams, boxes, tolerance=0.5) == pytest.approx(2 / 3)


def test_nll_by_hand() -> None:
    assert nll([[0.0, 0.0]], [0]) == pytest.approx(math.log(2))
    assert nll([[2.0, 0.0]], [0], temperature=2.0) == pytest.approx(math.log(1 + math.exp(-1)))


def _grid_best(logits: np.ndarray, labels: np.ndarray) -> float:
    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 4001))
    return float(grid[np.argmin([nll(logits, labels, t) for t in grid])])


def test_fit_temperature_overconfident_and_underconfident() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 400)
    predicted = np.where(rng.random(400) < 0.7, labels, rng.integers(0, 4, 400))
    base = np.eye(4)[predicted] + rng.normal(0, 0.3, (400, 4))
    for scale, should_be in ((8.0, "above"), (0.3, "below")):
        logits = base * scale
        t = fit_temperature(logits, labels)
        assert (t > 1) if should_be == "above" else (t < 1)
        assert nll(logits, labels, t) < nll(logits, labels, 1.0)
        assert t == pytest.approx(_grid_best(logits, labels), rel=0.01)


def test_fit_temperature_never_worse_than_one() -> None:
    # perfectly confident and right: the NLL falls as T → 0, so the bound is hit, still ≤ T=1
    logits = np.array([[5.0, 0.0], [0.0, 5.0]])
    t = fit_temperature(logits, [0, 1])
    assert nll(logits, [0, 1], t) <= nll(logits, [0, 1], 1.0)


def test_invalid_inputs_are_typed() -> None:
    with pytest.raises(ParameterError):
        confusion_matrix([0, 4], [0, 1], 4)
    with pytest.raises(ParameterError):
        accuracy([0, 1], [0])
    with pytest.raises(ParameterError):
        precision_recall_f1([0], [0], 2, "micro")  # type: ignore[arg-type]
    with pytest.raises(ParameterError):
        fit_temperature(np.zeros((0, 3)), [])


def test_classification_report_is_json_able() -> None:
    probs = np.eye(4)[Y4_PRED] * 0.7 + 0.075
    report = classification_report(Y4_TRUE, probs, 4)
    assert report["accuracy"] == pytest.approx(5 / 8)
    assert report["f1_macro"] == pytest.approx(37 / 60)
    assert report["confusion_matrix"][1] == [0, 2, 0, 0]
    json.dumps(report)
