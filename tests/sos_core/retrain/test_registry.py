"""The model registry (RG-7): content-addressed immutable versions, atomic pointer, exact rollback.

Models here are untrained tiny students (fast); what matters is that the bytes and the logits
round-trip exactly, not what the models predict.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from sos_core.errors import (
    CorruptStore,
    ModelIntegrityError,
    ParameterError,
    PromotionRefused,
)
from sos_core.inference.predictor import Predictor
from sos_core.models.model_file import WEIGHTS_NAME, load_model
from sos_core.retrain import ModelRegistry, active_model_dir
from sos_core.retrain.registry import POINTER_NAME
from sos_core.review import ReviewStore
from tests.sos_core.retrain.conftest import SIZE, random_model_dir
from tests.sos_core.review.helpers import add_case

PROMOTE = {"parent": None, "gate": {"decision": "promote"}}


@pytest.fixture
def fake_embedded(tmp_path: Path) -> Path:
    root = tmp_path / "embedded"
    random_model_dir(root / "student", seed=1, version="student-phantom-1.0")
    return root


@pytest.fixture
def registry(store: ReviewStore, fake_embedded: Path) -> ModelRegistry:
    return ModelRegistry.for_store(store, embedded=fake_embedded)


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(42)
    return [rng.integers(0, 4096, (SIZE, SIZE + 8 * i), dtype=np.uint16) for i in range(4)]


def _logits(model_dir: Path) -> np.ndarray:
    """Raw logits of the registry's active model on fixed inputs (CPU, eval mode)."""
    model, _ = load_model(model_dir)
    x = torch.from_numpy(np.random.default_rng(7).random((5, 1, SIZE, SIZE), dtype=np.float32))
    with torch.no_grad():
        return model(x).numpy()


def _probabilities(model_dir: Path) -> list[tuple[float, ...]]:
    predictor = Predictor(model_dir, device="cpu", threads=1)
    return [predictor.predict_image(img).probabilities for img in _images()]


def test_an_empty_registry_seeds_itself_with_the_embedded_model(
    registry: ModelRegistry, store: ReviewStore, fake_embedded: Path
) -> None:
    assert registry.pointer() is None
    active = registry.active()
    assert active is not None
    assert active.decision == "origin"
    assert active.lineage["origin"] == "embedded"
    assert active.lineage["source_version"] == "student-phantom-1.0"
    assert active.version == f"student-{active.card.weights_sha256[:12]}" == active.card.version
    assert registry.active_model_dir() == active.folder
    assert active.folder.parent == registry.versions_dir
    assert (active.folder / WEIGHTS_NAME).read_bytes() == (
        fake_embedded / "student" / WEIGHTS_NAME
    ).read_bytes()
    assert [e["action"] for e in registry.events()] == ["seed"]
    assert any(e.action == "registry.seed" for e in store.audit_entries())


def test_without_any_model_the_app_falls_back_to_the_embedded_path(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models", embedded=tmp_path / "nothing")
    assert registry.active() is None
    assert registry.active_model_dir() == tmp_path / "nothing" / "student"


def test_the_app_finds_the_active_model_without_opening_the_store(
    registry: ModelRegistry, store: ReviewStore, fake_embedded: Path
) -> None:
    active = registry.active()
    assert active is not None
    assert active_model_dir(store.folder, embedded=fake_embedded) == active.folder


@pytest.mark.req("RG-7")
def test_versions_are_content_addressed_and_never_overwritten(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    cand = random_model_dir(tmp_path / "cand", seed=2)
    first = registry.register(cand, role="student", lineage=PROMOTE)
    files = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in first.folder.iterdir()}
    # The same weights again, even with another lineage: the existing version, untouched.
    again = registry.register(cand, role="student", lineage={"gate": {"decision": "reject"}})
    assert again.version == first.version
    assert again.decision == "promote"
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in first.folder.iterdir()} == files
    assert first.version.endswith(first.card.weights_sha256[:12])
    assert not any(p.name.startswith(".") for p in registry.versions_dir.iterdir())


@pytest.mark.req("RG-7")
def test_rollback_restores_the_earlier_logits_bit_for_bit(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    origin = registry.active()
    assert origin is not None
    logits_before = _logits(registry.active_model_dir())
    probs_before = _probabilities(registry.active_model_dir())

    newer = registry.register(
        random_model_dir(tmp_path / "c", seed=3), role="student", lineage=PROMOTE
    )
    registry.promote(newer.version, actor="qa")
    assert registry.active_model_dir() == newer.folder
    assert not np.array_equal(_logits(registry.active_model_dir()), logits_before)

    back = registry.rollback(actor="qa")
    assert back.version == origin.version
    assert np.array_equal(_logits(registry.active_model_dir()), logits_before)
    assert _probabilities(registry.active_model_dir()) == probs_before
    assert [e["action"] for e in registry.events()] == ["seed", "promote", "rollback"]
    assert registry.pointer()["previous"] == []  # type: ignore[index]
    with pytest.raises(ParameterError, match="no earlier model version"):
        registry.rollback(actor="qa")  # one step only: the origin has no predecessor
    assert newer.folder.is_dir()  # rolled-back versions stay in the registry


def test_a_rollback_returns_the_rolled_back_models_labels_to_the_queue(
    registry: ModelRegistry, store: ReviewStore, tmp_path: Path
) -> None:
    cases = [add_case(store, seed) for seed in range(3)]
    ids = [store.add_label(c.case_id, stage=1, box=(1, 1, 9, 9), reviewer="dr").id for c in cases]
    origin = registry.active()
    assert origin is not None
    newer = registry.register(
        random_model_dir(tmp_path / "c", seed=3),
        role="student",
        lineage={**PROMOTE, "parent": origin.version, "run_id": "run-7"},
    )
    registry.promote(newer.version, actor="qa")
    store.mark_used(ids[:2], "run-7")  # what a promoting run does
    assert [i.label_id for i in store.queue().items] == ids[2:]

    registry.rollback(actor="qa")

    assert [i.label_id for i in store.queue().items] == ids  # the origin never learned them
    (entry,) = [e for e in store.audit_entries("run:run-7") if e.action == "training.release"]
    assert (entry.actor, entry.details["label_ids"]) == ("qa", ids[:2])
    assert store.labels_for_case(cases[0].case_id)[0].id == ids[0]  # nothing deleted


@pytest.mark.req("RG-7")
def test_the_pointer_is_replaced_atomically(
    registry: ModelRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    origin = registry.active()
    assert origin is not None
    before = (registry.root / POINTER_NAME).read_bytes()
    newer = registry.register(
        random_model_dir(tmp_path / "c", seed=4), role="student", lineage=PROMOTE
    )

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        registry.promote(newer.version, actor="qa")
    monkeypatch.undo()
    assert (registry.root / POINTER_NAME).read_bytes() == before  # old pointer, whole
    assert registry.active().version == origin.version  # type: ignore[union-attr]
    assert not [p for p in registry.root.iterdir() if p.name.endswith(".tmp")]
    registry.promote(newer.version, actor="qa")
    assert json.loads((registry.root / POINTER_NAME).read_text())["active"] == newer.version


def test_only_gate_approved_students_can_become_active(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    rejected = registry.register(
        random_model_dir(tmp_path / "r", seed=5),
        role="student",
        lineage={"parent": None, "gate": {"decision": "reject"}},
    )
    with pytest.raises(PromotionRefused, match="did not pass the promotion gate"):
        registry.promote(rejected.version, actor="qa")
    teacher = registry.register(
        random_model_dir(tmp_path / "t", seed=6), role="teacher", lineage={}
    )
    with pytest.raises(PromotionRefused, match="teacher"):
        registry.promote(teacher.version, actor="qa")
    assert registry.candidates() == [rejected]


def test_a_damaged_version_is_never_made_active(registry: ModelRegistry, tmp_path: Path) -> None:
    newer = registry.register(
        random_model_dir(tmp_path / "c", seed=7), role="student", lineage=PROMOTE
    )
    weights = newer.folder / WEIGHTS_NAME
    weights.chmod(0o644)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError):
        registry.promote(newer.version, actor="qa")


def test_a_damaged_pointer_is_reported(registry: ModelRegistry) -> None:
    registry.active()
    (registry.root / POINTER_NAME).write_text("{not json")
    with pytest.raises(CorruptStore, match="pointer"):
        registry.active()
