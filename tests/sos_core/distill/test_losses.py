"""Distillation losses against hand-computed values and an independent numpy reference.

fixtures/losses.json is written by fixtures/make_losses_fixture.py (numpy only, explicit loops).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from sos_core.distill.losses import (
    AttentionLoss,
    AttentionTransferLoss,
    ClassificationLoss,
    DistillationLoss,
    DistillObjective,
    box_coverage,
    create_loss,
    list_losses,
    roi_align,
)
from sos_core.errors import ParameterError, UnknownNameError

GOLDEN = json.loads((Path(__file__).parent / "fixtures" / "losses.json").read_text("utf-8"))


def _t(key: str) -> torch.Tensor:
    return torch.tensor(GOLDEN[key], dtype=torch.float64)


def _size() -> tuple[int, int]:
    h, w = GOLDEN["input_size"]
    return (h, w)


# --- registry ----------------------------------------------------------------------------------


def test_registry_builds_losses_by_name() -> None:
    assert {"cls", "kd", "attention", "attention_transfer", "distill"} <= set(list_losses())
    loss = create_loss("kd", temperature=2.0)
    assert isinstance(loss, DistillationLoss)
    assert loss.temperature == 2.0


def test_registry_unknown_name_is_typed() -> None:
    with pytest.raises(UnknownNameError, match="no loss named"):
        create_loss("focal")


# --- L_cls ---------------------------------------------------------------------------------------


def test_cross_entropy_by_hand() -> None:
    # logits (2, 0) with label 0: -log(e² / (e² + 1)) = log(1 + e⁻²)
    value = ClassificationLoss()(torch.tensor([[2.0, 0.0]]), torch.tensor([0]))
    assert value.item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)
    # uniform logits over 4 classes: log 4 whatever the label
    value = ClassificationLoss()(torch.zeros(3, 4), torch.tensor([0, 2, 3]))
    assert value.item() == pytest.approx(math.log(4), rel=1e-6)


def test_cross_entropy_golden() -> None:
    value = ClassificationLoss()(_t("logits"), torch.tensor(GOLDEN["labels"]))
    assert value.item() == pytest.approx(GOLDEN["cross_entropy"], rel=1e-9)


# --- L_dist --------------------------------------------------------------------------------------


def test_kd_by_hand() -> None:
    # teacher (ln 3, 0) → p_t = (3/4, 1/4) at T = 1; student (0, 0) → p_s = (1/2, 1/2).
    # KL = 3/4 ln(3/2) + 1/4 ln(1/2).
    loss = DistillationLoss(temperature=1.0)
    value = loss(torch.zeros(1, 2), torch.tensor([[math.log(3), 0.0]]))
    assert value.item() == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5), rel=1e-6)
    # equal logits: KL = 0 at any temperature
    z = torch.randn(4, 4)
    assert DistillationLoss()(z, z.clone()).item() == pytest.approx(0.0, abs=1e-6)


def test_kd_golden_with_t_squared_scaling() -> None:
    s, t = _t("logits"), _t("teacher_logits")
    assert DistillationLoss(3.0)(s, t).item() == pytest.approx(GOLDEN["kd_T3"], rel=1e-9)
    assert DistillationLoss(1.0)(s, t).item() == pytest.approx(GOLDEN["kd_T1"], rel=1e-9)


def test_kd_gradient_reaches_student_only() -> None:
    s = _t("logits").requires_grad_(True)
    t = _t("teacher_logits").requires_grad_(True)
    DistillationLoss()(s, t).backward()
    assert s.grad is not None
    assert s.grad.abs().sum() > 0
    assert t.grad is None


# --- RoI-align, coverage, L_attn and L_outside ---------------------------------------------------


def test_roi_align_exact_cells_and_bilinear_mean() -> None:
    cam = torch.arange(16, dtype=torch.float64).view(1, 4, 4)  # input 8 x 8, cells of 2 px
    # box on cells [0:2, 0:2]: 2 x 2 bins whose centres are those cells' centres
    out = roi_align(cam, torch.tensor([[0.0, 0.0, 4.0, 4.0]]), (8, 8), (2, 2))
    assert out[0].tolist() == [[0.0, 1.0], [4.0, 5.0]]
    # one bin: its centre (2, 2) px is the corner shared by cells 0, 1, 4, 5 → their mean
    out = roi_align(cam, torch.tensor([[0.0, 0.0, 4.0, 4.0]]), (8, 8), (1, 1))
    assert out.item() == pytest.approx((0 + 1 + 4 + 5) / 4)
    # sampling_ratio 2 on that one bin averages the four cell centres: same value
    out = roi_align(cam, torch.tensor([[0.0, 0.0, 4.0, 4.0]]), (8, 8), (1, 1), sampling_ratio=2)
    assert out.item() == pytest.approx(2.5)


def test_roi_align_golden() -> None:
    out = roi_align(_t("student_cam"), _t("boxes"), _size(), (3, 3))
    assert torch.allclose(out, _t("roi_align"), atol=1e-12)


def test_box_coverage_by_hand_and_golden() -> None:
    # input 8 x 8 on a 4 x 4 grid: box x in [0, 3] covers column 0 fully, column 1 by half
    cov = box_coverage(torch.tensor([[0.0, 0.0, 3.0, 8.0]]), (8, 8), (4, 4))
    assert cov[0, 0].tolist() == [1.0, 0.5, 0.0, 0.0]
    assert torch.equal(cov[0, 3], cov[0, 0])
    golden = box_coverage(_t("boxes"), _size(), (4, 6))
    assert torch.allclose(golden.double(), _t("coverage"), atol=1e-6)


def test_outside_share_by_hand() -> None:
    cam = torch.zeros(1, 4, 4, dtype=torch.float64)
    cam[0, 0, 0] = 3.0  # inside the box
    cam[0, 3, 3] = 1.0  # outside
    share = AttentionLoss().outside_share(cam, torch.tensor([[0.0, 0.0, 4.0, 4.0]]), (8, 8))
    assert share.item() == pytest.approx(0.25)
    # an all-zero map has no mass outside
    zero = AttentionLoss().outside_share(
        torch.zeros(1, 4, 4), torch.tensor([[0, 0, 4, 4.0]]), (8, 8)
    )
    assert zero.item() == 0.0


def test_attention_match_by_hand() -> None:
    # student 2 x 2 map on a 4 x 4 input, box = the whole input, teacher grid 2 x 2:
    # sampled = the student map itself; max-normalised (1, .5; .5, 0) vs teacher (1, 0; 0, 0)
    student = torch.tensor([[[2.0, 1.0], [1.0, 0.0]]])
    teacher = torch.tensor([[[4.0, 0.0], [0.0, 0.0]]])
    box = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
    match, outside = AttentionLoss().terms(student, teacher, box, (4, 4))
    assert match.item() == pytest.approx((0.25 + 0.25) / 4)
    assert outside.item() == pytest.approx(0.0)
    l1 = AttentionLoss(distance="l1").match(student, teacher, box, (4, 4))
    assert l1.item() == pytest.approx((0.5 + 0.5) / 4)


def test_attention_golden_and_weighting() -> None:
    s, t, b = _t("student_cam"), _t("teacher_cam"), _t("boxes")
    match, outside = AttentionLoss().terms(s, t, b, _size())
    assert match.item() == pytest.approx(GOLDEN["attention_mse_max"], rel=1e-9)
    assert outside.item() == pytest.approx(GOLDEN["outside_share"], rel=1e-6)
    l1 = AttentionLoss(normalise="sum", distance="l1").match(s, t, b, _size())
    assert l1.item() == pytest.approx(GOLDEN["attention_l1_sum"], rel=1e-9)
    total = AttentionLoss(outside_weight=0.3)(s, t, b, _size())
    assert total.item() == pytest.approx(
        GOLDEN["attention_mse_max"] + 0.3 * GOLDEN["outside_share"], rel=1e-6
    )


def test_attention_gradient_reaches_student_map_only() -> None:
    s = _t("student_cam").requires_grad_(True)
    t = _t("teacher_cam").requires_grad_(True)
    AttentionLoss()(s, t, _t("boxes"), _size()).backward()
    assert s.grad is not None
    assert s.grad.abs().sum() > 0
    assert t.grad is None


def test_attention_invalid_settings() -> None:
    with pytest.raises(ParameterError):
        AttentionLoss(normalise="softmax")  # type: ignore[arg-type]
    with pytest.raises(ParameterError):
        AttentionLoss().match(torch.ones(2, 4, 4), torch.ones(3, 2, 2), torch.zeros(2, 4), (8, 8))


def test_attention_transfer_by_hand() -> None:
    # identical single-channel maps → 0; orthogonal one-hot maps → ‖e1 - e2‖² = 2
    feats = torch.zeros(1, 1, 2, 2)
    feats[0, 0, 0, 0] = 1.0
    teacher = torch.zeros(1, 3, 2, 2)
    teacher[0, :, 1, 1] = 2.0
    box = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
    loss = AttentionTransferLoss()
    q_s, q_t = loss.activation_map(feats), loss.activation_map(teacher)
    assert q_t[0, 1, 1].item() == pytest.approx(4.0)  # mean over 3 channels of 2²
    assert loss(q_s, q_s.clone(), box, (4, 4)).item() == pytest.approx(0.0, abs=1e-7)
    assert loss(q_s, q_t, box, (4, 4)).item() == pytest.approx(2.0)


def test_objective_with_activation_maps_uses_attention_transfer() -> None:
    # Q maps [[1, 0], [0, 0]] against [[0, 0], [0, 1]]: L_AT = 2, weighted by γ = 0.5.
    s = torch.zeros(1, 2, 2)
    s[0, 0, 0] = 1.0
    t = torch.zeros(1, 2, 2)
    t[0, 1, 1] = 3.0
    objective = DistillObjective(
        alpha_cls=0.0, beta_dist=0.0, gamma_attn=0.5, delta_outside=0.0, attn_map="activation"
    )
    out = objective(
        torch.zeros(1, 4),
        torch.tensor([0]),
        student_cam=s,
        teacher_cam=t,
        boxes=torch.tensor([[0.0, 0.0, 4.0, 4.0]]),
        input_size=(4, 4),
    )
    assert out.terms["attn"].item() == pytest.approx(2.0)
    assert out.total.item() == pytest.approx(1.0)
    with pytest.raises(ParameterError, match="outside"):
        DistillObjective(delta_outside=0.5, attn_map="activation")(
            torch.zeros(1, 4),
            torch.tensor([0]),
            teacher_logits=torch.zeros(1, 4),
            student_cam=s,
            teacher_cam=t,
            boxes=torch.tensor([[0.0, 0.0, 4.0, 4.0]]),
            input_size=(4, 4),
        )


# --- the combined objective ----------------------------------------------------------------------


def test_objective_is_the_weighted_sum_of_its_terms() -> None:
    s, t = _t("logits")[:2], _t("teacher_logits")[:2]
    labels = torch.tensor(GOLDEN["labels"][:2])
    objective = DistillObjective(alpha_cls=0.5, beta_dist=2.0, gamma_attn=3.0, delta_outside=0.25)
    out = objective(
        s,
        labels,
        teacher_logits=t,
        student_cam=_t("student_cam"),
        teacher_cam=_t("teacher_cam"),
        boxes=_t("boxes"),
        input_size=_size(),
    )
    expected = (
        0.5 * ClassificationLoss()(s, labels).item()
        + 2.0 * DistillationLoss(3.0)(s, t).item()
        + 3.0 * GOLDEN["attention_mse_max"]
        + 0.25 * GOLDEN["outside_share"]
    )
    assert out.total.item() == pytest.approx(expected, rel=1e-6)
    assert set(out.terms) == {"cls", "dist", "attn", "outside"}
    assert out.terms["attn"].item() == pytest.approx(GOLDEN["attention_mse_max"], rel=1e-9)
    assert not any(v.requires_grad for v in out.terms.values())


def test_label_terms_of_a_crop_reading_by_hand_and_golden() -> None:
    # The second look's loss (inference.zoom): α · L_cls + β · L_dist, no map terms.
    # logits (2, 0), label 0, teacher (2, 0) too: CE = log(1 + e⁻²), KL = 0.
    objective = DistillObjective(alpha_cls=0.5, beta_dist=2.0, gamma_attn=3.0)
    z = torch.tensor([[2.0, 0.0]])
    value = objective.label_terms(z, torch.tensor([0]), z.clone())
    assert value.item() == pytest.approx(0.5 * math.log(1 + math.exp(-2)), rel=1e-6)
    s, t = _t("logits"), _t("teacher_logits")
    labels = torch.tensor(GOLDEN["labels"])
    value = objective.label_terms(s, labels, t)
    assert value.item() == pytest.approx(0.5 * GOLDEN["cross_entropy"] + 2.0 * GOLDEN["kd_T3"])
    with pytest.raises(ParameterError, match="teacher's logits"):
        objective.label_terms(s, labels, None)


def test_objective_cls_only_needs_no_teacher() -> None:
    logits = _t("logits").requires_grad_(True)
    labels = torch.tensor(GOLDEN["labels"])
    out = DistillObjective(beta_dist=0, gamma_attn=0, delta_outside=0)(logits, labels)
    assert out.total.item() == pytest.approx(GOLDEN["cross_entropy"], rel=1e-9)
    assert set(out.terms) == {"cls"}
    out.total.backward()
    assert logits.grad is not None


def test_objective_missing_inputs_and_bad_weights() -> None:
    logits, labels = _t("logits"), torch.tensor(GOLDEN["labels"])
    with pytest.raises(ParameterError, match="teacher's logits"):
        DistillObjective()(logits, labels)
    with pytest.raises(ParameterError, match="student map"):
        DistillObjective(beta_dist=0)(logits, labels)
    with pytest.raises(ParameterError):
        DistillObjective(alpha_cls=-1)
    with pytest.raises(ParameterError):
        DistillObjective(alpha_cls=0, beta_dist=0, gamma_attn=0, delta_outside=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_objective_is_float32_and_finite_for_a_dead_half_precision_map(dtype) -> None:
    """Mixed precision: a student whose map is all zero (ReLU of nothing, common early from
    scratch) must still give a finite float32 loss. In float16 the eps of the map
    normalisation is 0, and 0 / 0 made every step NaN on the GPU (seen on an H200)."""
    labels = torch.tensor(GOLDEN["labels"][:2])
    logits = _t("logits")[:2].to(dtype).requires_grad_(True)
    dead = torch.zeros_like(_t("student_cam")).to(dtype).requires_grad_(True)
    out = DistillObjective(gamma_attn=2.0, delta_outside=0.5)(
        logits,
        labels,
        teacher_logits=_t("teacher_logits")[:2].to(dtype),
        student_cam=dead,
        teacher_cam=_t("teacher_cam").to(dtype),
        boxes=_t("boxes").to(dtype),
        input_size=_size(),
    )
    assert out.total.dtype == torch.float32
    assert torch.isfinite(out.total)
    out.total.backward()
    assert torch.isfinite(logits.grad).all()
    # A dead map's gradient is 1/eps: finite in bfloat16 (float32's range), which is why
    # training uses bfloat16 where the GPU has it; float16 overflows and the scaler skips.
    if dtype == torch.bfloat16:
        assert torch.isfinite(dead.grad).all()
