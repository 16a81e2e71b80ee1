"""Judging a candidate student and recording the verdict: envelope, locked set, gate, registry.

Shared by `run.retrain` (a candidate trained here) and `submit_candidate` (a candidate trained
elsewhere, e.g. on a GPU server from an exported queue): the same envelope check (RG-6), the
same locked-set evaluation of active and candidate in one go, the same gate (RG-5), and a
registry version whose lineage holds all of it (RG-7, RG-8). Only a passing candidate moves the
active pointer; a rejected one stays in the registry with its report.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sos_core import __version__
from sos_core.errors import ModelNotFound, OutsideChangeEnvelope
from sos_core.retrain.envelope import check_envelope
from sos_core.retrain.files import write_json_atomic
from sos_core.retrain.gate import GateConfig, GateDecision, decide, load_gate_config
from sos_core.retrain.locked_eval import evaluate_models, write_locked_dataset
from sos_core.retrain.locked_set import LockedSet, load_locked_set
from sos_core.retrain.records import RetrainReport
from sos_core.retrain.training_data import manifest_hash, remove_tree, training_manifest

if TYPE_CHECKING:
    from sos_core.retrain.registry import ModelRegistry, ModelVersion
    from sos_core.review.store import ReviewStore

logger = logging.getLogger(__name__)


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus 6 random hex digits."""
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class Judgement:
    """Both models' locked-set evaluations, what was evaluated, and the gate's decision."""

    evaluation: dict[str, Any]  # {"locked": info, "active": eval, "candidate": eval}
    decision: GateDecision


def judge(
    store: ReviewStore,
    locked: LockedSet,
    active: ModelVersion,
    candidate_dir: Path,
    work: Path,
    gate: GateConfig,
) -> Judgement:
    """Envelope check, then score active and candidate on the locked set, then the gate.

    Raises
    ------
    OutsideChangeEnvelope
        The candidate changes more than weights and calibration (nothing is evaluated).
    """
    from sos_core.models.model_file import read_card

    check_envelope(active.card, read_card(candidate_dir), path=candidate_dir)
    info = write_locked_dataset(store, locked, work / "locked")
    evals = evaluate_models(
        {"active": active.folder, "candidate": candidate_dir},
        work / "locked",
        modalities=tuple(active.card.modalities) or None,
    )
    return Judgement({"locked": info, **evals}, decide(evals["active"], evals["candidate"], gate))


def register_student(
    registry: ModelRegistry,
    candidate_dir: Path,
    *,
    active: ModelVersion,
    teacher_version: str | None,
    run_id: str,
    data: Mapping[str, Any],
    judgement: Judgement,
    extra: Mapping[str, Any],
    actor: str,
) -> ModelVersion:
    """Register the candidate with its full lineage (decision included) and updated card."""
    from sos_core.models.model_file import read_card

    card = read_card(candidate_dir)
    metrics = {**_plain(card.metrics), "locked_set": judgement.evaluation["candidate"]}
    return registry.register(
        candidate_dir,
        role="student",
        lineage={
            "parent": active.version,
            "teacher_version": teacher_version,
            "run_id": run_id,
            "data": dict(data),
            **dict(extra),
            "evaluation": judgement.evaluation,
            "gate": judgement.decision.to_dict(),
        },
        card_changes={
            "parent_version": active.version,
            "training_data": dict(data),
            "metrics": metrics,
            "origin": f"sos_core {__version__} run {run_id}; teacher {teacher_version}",
        },
        actor=actor,
    )


def conclude(
    store: ReviewStore,
    registry: ModelRegistry,
    student: ModelVersion,
    judgement: Judgement,
    *,
    label_ids: Sequence[int],
    run_dir: Path,
    base: Mapping[str, Any],
    start: float,
    actor: str,
) -> RetrainReport:
    """Promote a passing candidate (then mark its labels used), write the run report, audit.

    Labels are marked used only on promotion: "used" means learned by the active model.
    """
    decision = judgement.decision
    run_id = str(base["run_id"])
    if decision.promote:
        registry.promote(student.version, actor=actor, reason=f"run {run_id}")
        if label_ids:
            store.mark_used(list(label_ids), run_id, actor=actor)
        message = f"The new model {student.version} passed the gate and is now active."
    else:
        # Not marked used: the active model never learned these labels, so they stay queued
        # and the next run trains on them again (with whatever was labelled meanwhile).
        message = (
            f"The new model was kept as a rejected candidate because {decision.reasons[0]}; "
            "the active model is unchanged and its labels stay in the queue for the next run."
        )
    report = RetrainReport(
        "promoted" if decision.promote else "rejected",
        message,
        active_version=student.version if decision.promote else str(base["parent_version"]),
        candidate_version=student.version,
        teacher_version=student.teacher_version,
        gate=decision.to_dict(),
        report_path=run_dir / "report.json",
        seconds=time.monotonic() - start,
        **dict(base),
    )
    write_json_atomic(
        run_dir / "report.json", {**report.to_dict(), "evaluation": judgement.evaluation}
    )
    audit_run(store, actor, run_id, {"status": report.status, "candidate": student.version})
    logger.info("run %s: %s", run_id, report.status)
    return report


def audit_run(store: ReviewStore, actor: str, run_id: str, details: dict[str, Any]) -> None:
    """The run's outcome in the store's audit log."""
    store.record(actor=actor, action="retrain.run", subject=f"run:{run_id}", details=details)


def submit_candidate(
    store: ReviewStore,
    registry: ModelRegistry,
    candidate_dir: str | Path,
    *,
    label_ids: Sequence[int] = (),
    gate: GateConfig | None = None,
    actor: str = "submit",
) -> RetrainReport:
    """Judge a student trained elsewhere (same envelope, locked set and gate) and record it.

    Parameters
    ----------
    candidate_dir
        A model folder (weights + card) fine-tuned from the active student.
    label_ids
        The store labels it was trained on (their manifest hash goes into the lineage).

    Returns
    -------
    RetrainReport
        "promoted", "rejected" (kept as a candidate with its report) or "refused" (RG-6).
    """
    start = time.monotonic()
    active = registry.active()
    if active is None:
        raise ModelNotFound("There is no active model to compare the candidate with.")
    locked = load_locked_set(store)
    run_id = new_run_id()
    run_dir = registry.root / "runs" / run_id
    ids = sorted(int(i) for i in label_ids)
    base = {"run_id": run_id, "parent_version": active.version, "n_labels": len(ids)}
    try:
        judgement = judge(
            store,
            locked,
            active,
            Path(candidate_dir),
            run_dir / "work",
            gate or load_gate_config(registry.root),
        )
    except OutsideChangeEnvelope as exc:
        audit_run(store, actor, run_id, {"status": "refused", "problems": list(exc.problems)})
        return RetrainReport("refused", str(exc), problems=exc.problems, **base)
    finally:
        remove_tree(run_dir / "work")
    data = {
        "source": "submitted",
        "manifest_hash": manifest_hash(training_manifest(store, ids)),
        "label_ids": ids,
        "n_labels": len(ids),
    }
    store.record(
        actor=actor,
        action="retrain.data",
        subject=f"run:{run_id}",
        details={"label_ids": ids, "manifest_hash": data["manifest_hash"]},
    )
    student = register_student(
        registry,
        Path(candidate_dir),
        active=active,
        teacher_version=active.teacher_version,
        run_id=run_id,
        data=data,
        judgement=judgement,
        extra={},
        actor=actor,
    )
    return conclude(
        store, registry, student, judgement,
        label_ids=ids, run_dir=run_dir, base=base, start=start, actor=actor,
    )  # fmt: skip


def _plain(value: Any) -> Any:
    """Plain JSON data from a card's read-only mappings."""
    import json

    return json.loads(json.dumps(value, default=dict))
