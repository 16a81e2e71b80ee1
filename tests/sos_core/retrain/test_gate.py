"""The promotion gate's rules (RG-5) and the change envelope of automatic retraining (RG-6)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from sos_core.errors import OutsideChangeEnvelope, ParameterError
from sos_core.models.model_file import load_model, read_card, save_model
from sos_core.models.registry import create_model
from sos_core.retrain import (
    GateConfig,
    ModelRegistry,
    check_envelope,
    decide,
    envelope_problems,
    load_gate_config,
    save_gate_config,
    submit_candidate,
)
from sos_core.review import ReviewStore
from tests.sos_core.retrain.conftest import STUDENT_KWARGS, random_model_dir

NAMES = ("Open", "Partially fused", "Mostly fused", "Completely fused")


def _evaluation(
    acc: float = 0.8, ece: float = 0.05, f1: tuple[float, ...] = (0.8,) * 4, pg: float = 0.7
) -> dict:
    return {
        "n": 40,
        "overall": {
            "accuracy": acc,
            "f1_macro": sum(f1) / 4,
            "kappa_quadratic": 0.9,
            "ece": ece,
            "pointing_game": pg,
        },
        "per_stage": [
            {"stage": i, "name": n, "support": 10, "f1": f, "recall": f, "pointing_game": pg}
            for i, (n, f) in enumerate(zip(NAMES, f1, strict=True))
        ],
    }


# --- the gate ----------------------------------------------------------------------------------


@pytest.mark.req("RG-5")
@pytest.mark.parametrize(
    ("candidate", "promote", "reason"),
    [
        (_evaluation(), True, None),
        (_evaluation(acc=0.79), True, None),  # within the 0.02 margin
        (_evaluation(acc=0.90), True, None),
        (_evaluation(acc=0.75), False, "accuracy (overall) fell from 0.800 to 0.750"),
        (_evaluation(ece=0.07), True, None),
        (_evaluation(ece=0.10), False, "ece (overall) rose from 0.050 to 0.100"),
        (_evaluation(f1=(0.8, 0.8, 0.65, 0.95)), False, "f1 (stage 2) fell"),
        (_evaluation(pg=0.68), True, None),
        (_evaluation(acc=0.9, pg=0.5), False, "pointing_game (overall) fell from 0.700 to 0.500"),
    ],
)
def test_the_gate_allows_only_the_configured_margins(
    candidate: dict, promote: bool, reason: str | None
) -> None:
    decision = decide(_evaluation(), candidate, GateConfig())
    assert decision.promote is promote
    assert decision.decision == ("promote" if promote else "reject")
    if reason:
        assert reason in decision.reasons[0]
    assert {c.scope for c in decision.checks} >= {"overall", "stage 0", "stage 3"}


def test_stages_with_too_few_locked_cases_are_reported_not_judged() -> None:
    candidate = _evaluation(f1=(0.8, 0.8, 0.0, 0.8))
    candidate["per_stage"][2]["support"] = 1
    active = copy.deepcopy(_evaluation())
    active["per_stage"][2]["support"] = 1
    decision = decide(active, candidate, GateConfig(margins={"accuracy": 0.02}))
    assert decision.promote
    assert "stage 2" not in {c.scope for c in decision.checks}


def test_a_locked_set_too_small_rejects_every_candidate() -> None:
    small = _evaluation(acc=1.0)
    small["n"] = 5
    active = _evaluation(acc=0.1)
    active["n"] = 5
    decision = decide(active, small, GateConfig(min_locked_cases=8))
    assert not decision.promote
    assert "holds 5 usable case(s)" in decision.reasons[0]
    with pytest.raises(ParameterError, match="same locked cases"):
        decide(_evaluation(), small, GateConfig())


def test_gate_config_is_validated() -> None:
    with pytest.raises(ParameterError, match="no metric named"):
        GateConfig(margins={"auc": 0.1})
    with pytest.raises(ParameterError, match="between 0 and 1"):
        GateConfig(margins={"accuracy": -0.1})
    with pytest.raises(ParameterError, match="unknown keys"):
        GateConfig.from_dict({"margin": {}})


@pytest.mark.req("RG-5")
def test_gate_changes_are_versioned_and_audited(store: ReviewStore, tmp_path: Path) -> None:
    root = tmp_path / "models"
    assert load_gate_config(root).version == 0
    first = save_gate_config(
        root, GateConfig(), actor="qa-lead", reason="initial protocol", audit=store.record
    )
    stricter = GateConfig(margins={**first.margins, "accuracy": 0.0})
    second = save_gate_config(root, stricter, actor="qa-lead", reason="tighter", audit=store.record)
    assert (first.version, second.version) == (1, 2)
    assert load_gate_config(root) == second
    history = [json.loads(x) for x in (root / "gate_history.jsonl").read_text().splitlines()]
    assert [h["config"]["version"] for h in history] == [1, 2]
    assert history[1]["previous"]["margins"]["accuracy"] == 0.02
    audited = [e for e in store.audit_entries(subject="gate")]
    assert [e.details["version"] for e in audited] == [1, 2]
    assert audited[1].details["hash"] == second.hash
    with pytest.raises(ParameterError, match="who changes it and why"):
        save_gate_config(root, GateConfig(), actor="qa-lead", reason="")


# --- the change envelope -------------------------------------------------------------------


def _variant(base: Path, out: Path, num_classes: int = 4, **card_changes: Any) -> Path:
    """A copy of `base` with other weights and the given card changes."""
    _, card = load_model(base)
    torch.manual_seed(99)
    kwargs = {**STUDENT_KWARGS, "num_classes": num_classes} if num_classes != 4 else STUDENT_KWARGS
    model = create_model("student", **kwargs)
    save_model(out, model, card.replace(kwargs=kwargs, **card_changes))
    return out


@pytest.mark.req("RG-6")
def test_only_weights_and_calibration_may_change(tmp_path: Path) -> None:
    base = random_model_dir(tmp_path / "base", seed=1)
    parent = read_card(base)
    allowed = read_card(_variant(base, tmp_path / "ok", temperature=1.7, version="x"))
    assert envelope_problems(parent, allowed) == []
    renamed = parent.replace(stage_names=("Open", "Bridging", "Mostly fused", "Fused"))
    assert envelope_problems(parent, renamed) == ["class list changed"]
    other_pre = parent.replace(preprocessing={**parent.preprocessing, "crop_context": 2.0})
    assert envelope_problems(parent, other_pre) == ["input preprocessing changed"]
    use = parent.replace(intended_use="Diagnosis of fusion stage.")
    with pytest.raises(OutsideChangeEnvelope, match="intended-use text") as info:
        check_envelope(parent, use)
    assert info.value.problems == ("intended-use text changed",)


@pytest.mark.req("RG-6")
@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"num_classes": 5, "stage_names": (*NAMES, "Scar")}, "class list changed"),
        ({"stage_names": ("Open", "Bridging", "Mostly fused", "Fused")}, "class list changed"),
        (
            {"preprocessing": {"id": "other-v2", "input": "full", "crop_context": 1.25}},
            "input preprocessing changed",
        ),
        ({"input_size": (96, 96)}, "input size changed"),
        ({"modality_input_sizes": {"slice": (96, 96)}}, "input size per modality changed"),
    ],
)
def test_the_automatic_path_refuses_candidates_outside_the_envelope(
    store: ReviewStore, tmp_path: Path, changes: dict[str, Any], problem: str
) -> None:
    embedded = tmp_path / "embedded"
    random_model_dir(embedded / "student", seed=1)
    registry = ModelRegistry.for_store(store, embedded=embedded)
    origin = registry.active()
    assert origin is not None
    candidate = _variant(embedded / "student", tmp_path / "cand", **changes)

    report = submit_candidate(store, registry, candidate)

    assert report.status == "refused"
    assert problem in report.problems
    assert "automatic retraining may change only the weights" in report.message
    assert [v.version for v in registry.versions()] == [origin.version]  # nothing registered
    assert registry.active().version == origin.version  # type: ignore[union-attr]
    assert any(
        e.action == "retrain.run" and e.details["status"] == "refused"
        for e in store.audit_entries()
    )
