"""Controlled retraining: queue → teacher fine-tune → student distillation → locked set → gate.

`retrain(store, registry)` is one plain synchronous function (the caller picks the thread or
process; `process.start_retrain_process` runs it in a child process for the desktop app):

1. take the retraining queue (the labels the active model has not learned; a rejected run's
   labels are still in it) minus every locked case (by id and by pixel content, RG-4);
   no labels: "nothing to learn", nothing is trained;
2. write it as a dataset folder with a stratified train/val split, and check it by content
   against the locked set once more just before any training reads it;
3. fine-tune the active teacher on the experts' crops, then distil the student from the active
   student with that teacher (`TrainConfig.init_from`); each keeps its parent's calibration
   temperature unless the validation split is big enough to refit it (`calibration`);
4. refuse a candidate outside the change envelope (RG-6);
5. score active and candidate students on the locked set; the gate decides (RG-5);
6. register teacher and student as immutable versions with their lineage (parent, manifest hash
   of the label ids, seeds, code version, evaluation, decision; RG-7, RG-8); promote only if
   the gate passed, then mark the labels used (learned by the active model, out of the queue);
   a rejected candidate marks nothing, so its labels are trained on again by the next run.

One run at a time per registry: a second request gets the typed "already_running" result.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sos_core import __version__
from sos_core.errors import ModelNotFound, OutsideChangeEnvelope
from sos_core.retrain.calibration import settle_temperature
from sos_core.retrain.candidate import audit_run, conclude, judge, new_run_id, register_student
from sos_core.retrain.envelope import check_envelope
from sos_core.retrain.gate import GateConfig, load_gate_config
from sos_core.retrain.locked_set import LockedSet, check_training_dataset, load_locked_set
from sos_core.retrain.locked_set import pixel_key as _pixel_key
from sos_core.retrain.records import RetrainOptions, RetrainReport
from sos_core.retrain.training_data import (
    manifest_hash,
    per_stage_counts,
    remove_tree,
    row_from_queue,
    stratified_split,
    training_manifest,
    write_dataset,
)

if TYPE_CHECKING:
    from sos_core.distill.config import TrainConfig
    from sos_core.distill.training import TrainResult
    from sos_core.models.card import ModelCard
    from sos_core.retrain.registry import ModelRegistry, ModelVersion
    from sos_core.review.records import QueueItem
    from sos_core.review.store import ReviewStore

logger = logging.getLogger(__name__)

Progress = Callable[[float], None]


def retrain(
    store: ReviewStore,
    registry: ModelRegistry,
    *,
    options: RetrainOptions | None = None,
    gate: GateConfig | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> RetrainReport:
    """Run one controlled retraining; see the module docstring for the steps.

    Parameters
    ----------
    options
        Epochs, learning rate, seed, device ... (defaults: `RetrainOptions()`).
    gate
        The gate configuration; default: the registry's saved one (`gate.json`).
    progress
        Called with the fraction done (0..1), from this thread.
    cancel
        Set it to stop after the current epoch; nothing is registered then.

    Returns
    -------
    RetrainReport
        Also for "already running", "nothing to learn" and the other non-training outcomes.

    Raises
    ------
    ModelNotFound
        There is no active model (nor embedded one) or its teacher is missing.
    CorruptStore
        The locked set or a locked case fails its integrity check.
    """
    lock = registry.retrain_lock()
    if not lock.acquire(blocking=False):
        return RetrainReport(
            "already_running", "A retraining run is already in progress; wait for it to finish."
        )
    try:
        return _retrain(store, registry, options or RetrainOptions(), gate, progress, cancel)
    finally:
        lock.release()


def training_items(store: ReviewStore, locked: LockedSet) -> tuple[list[QueueItem], int]:
    """The queue minus every locked case; returns (items, locked cases held out).

    The store's queue already leaves out the locked cases by id; this checks the rest again by
    id, store hash and export pixel hash (the same picture ingested under another id, RG-4).
    """
    queue = store.queue()
    keep, excluded = [], queue.locked_cases
    for item in queue.items:
        case = store.case(item.case_id)
        if locked.holds(case_id=item.case_id, content=case.content_hash) or (
            len(locked) and _pixel_key(store.blobs.get_array(case.blob)) in locked.pixel_keys
        ):
            excluded += 1
            continue
        keep.append(item)
    return keep, excluded


def guarded_train(
    config: TrainConfig,
    locked: LockedSet,
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> TrainResult:
    """`distill.training.train`, after refusing any locked case in its dataset (RG-4).

    Raises
    ------
    LockedSetViolation
        The training or validation rows hold a locked case (by id or pixel content).
    """
    from sos_core.distill.training import train

    check_training_dataset(locked, config.dataset)
    return train(config, progress=progress, cancel=cancel, resume=False)


def _retrain(
    store: ReviewStore,
    registry: ModelRegistry,
    opts: RetrainOptions,
    gate: GateConfig | None,
    progress: Progress | None,
    cancel: threading.Event | None,
) -> RetrainReport:
    start = time.monotonic()
    locked = load_locked_set(store)
    items, excluded = training_items(store, locked)
    counts = {
        "n_labels": len(items),
        "excluded_locked": excluded,
        "per_stage": per_stage_counts(items),
    }
    if not items:
        return RetrainReport(
            "nothing_to_learn", "There are no new expert labels to learn from.", **counts
        )
    if len(items) < opts.min_labels:
        return RetrainReport(
            "too_few_labels",
            f"Only {len(items)} new label(s); at least {opts.min_labels} are needed to train "
            "and validate.",
            **counts,
        )
    if not len(locked):
        return RetrainReport(
            "no_locked_set",
            "There is no locked validation set to judge a new model on; fix one first.",
            **counts,
        )
    active = registry.active()
    if active is None:
        raise ModelNotFound("There is no active model to retrain from; install the embedded one.")
    teacher = registry.teacher_for(active)
    if teacher is None:
        raise ModelNotFound("The active model's teacher is not in the registry; cannot retrain.")
    run = _Run(store, registry, opts, locked, active, teacher, _Phases(progress), cancel)
    try:
        return run.execute(items, counts, gate or load_gate_config(registry.root), start)
    finally:
        remove_tree(run.work)


class _Run:
    """The state of one run that got past the preliminary checks."""

    def __init__(
        self,
        store: ReviewStore,
        registry: ModelRegistry,
        opts: RetrainOptions,
        locked: LockedSet,
        active: ModelVersion,
        teacher: ModelVersion,
        phases: _Phases,
        cancel: threading.Event | None,
    ) -> None:
        self.store, self.registry, self.opts, self.locked = store, registry, opts, locked
        self.active, self.teacher, self.phases, self.cancel = active, teacher, phases, cancel
        self.run_id = new_run_id()
        self.dir = registry.root / "runs" / self.run_id
        self.work = self.dir / "work"
        self.calibration: dict[str, Any] = {}  # role → `settle_temperature`'s record

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def execute(
        self, items: list[QueueItem], counts: dict[str, Any], gate: GateConfig, start: float
    ) -> RetrainReport:
        base = {"run_id": self.run_id, "parent_version": self.active.version, **counts}
        data_dir, data = self._write_data(items, counts)
        self.phases.done(0.05)
        if self.cancelled():
            return RetrainReport("cancelled", "Retraining was cancelled; nothing changed.", **base)
        t_cfg = self._config("teacher", data_dir, None)
        t_res = guarded_train(
            t_cfg, self.locked, progress=self.phases.span(0.05, 0.35), cancel=self.cancel
        )
        self._settle("teacher", t_res, self.teacher, data)
        if self.cancelled():
            return RetrainReport("cancelled", "Retraining was cancelled; nothing changed.", **base)
        s_cfg = self._config("student", data_dir, t_res.model_dir)
        s_res = guarded_train(
            s_cfg, self.locked, progress=self.phases.span(0.35, 0.8), cancel=self.cancel
        )
        self._settle("student", s_res, self.active, data)
        if self.cancelled():
            return RetrainReport("cancelled", "Retraining was cancelled; nothing changed.", **base)
        try:
            check_envelope(self.teacher.card, t_res.card, path=t_res.model_dir)
            judgement = judge(
                self.store, self.locked, self.active, s_res.model_dir, self.work, gate
            )
        except OutsideChangeEnvelope as exc:
            audit_run(
                self.store,
                self.opts.actor,
                self.run_id,
                {"status": "refused", "problems": list(exc.problems)},
            )
            return RetrainReport("refused", str(exc), problems=exc.problems, **base)
        self.phases.done(0.9)
        teacher = self._register_teacher(t_res, t_cfg, data)
        cfgs = {"teacher": t_cfg, "student": s_cfg}
        student = register_student(
            self.registry,
            s_res.model_dir,
            active=self.active,
            teacher_version=teacher.version,
            run_id=self.run_id,
            data=data,
            judgement=judgement,
            extra={
                "seeds": {k: c.seed for k, c in cfgs.items()},
                "config": {k: _portable(c) for k, c in cfgs.items()},
                "training": _training(s_res),
                "calibration": self.calibration,
            },
            actor=self.opts.actor,
        )
        report = conclude(
            self.store, self.registry, student, judgement,
            label_ids=data["label_ids"], run_dir=self.dir, base=base, start=start,
            actor=self.opts.actor,
        )  # fmt: skip
        self.phases.done(1.0)
        return report

    def _write_data(
        self, items: list[QueueItem], counts: dict[str, Any]
    ) -> tuple[Path, dict[str, Any]]:
        rows = [row_from_queue(item) for item in items]
        splits = stratified_split(rows, self.opts.val_fraction)
        data_dir = write_dataset(self.store, rows, splits, self.work / "data")
        label_ids = sorted(i.label_id for i in items)
        data_hash = manifest_hash(training_manifest(self.store, label_ids))
        self.store.record(
            actor=self.opts.actor,
            action="retrain.data",
            subject=f"run:{self.run_id}",
            details={
                "label_ids": label_ids,
                "manifest_hash": data_hash,
                "parent": self.active.version,
            },
        )
        data = {
            "source": "review store",
            "store_id": self.store.meta().get("store_id"),
            "manifest_hash": data_hash,
            "label_ids": label_ids,
            "n_labels": len(label_ids),
            "per_stage": {str(k): v for k, v in counts["per_stage"].items()},
            "splits": {s: list(splits.values()).count(s) for s in ("train", "val")},
            "synthetic": False,
        }
        return data_dir, data

    def _config(self, kind: str, data_dir: Path, teacher_dir: Path | None) -> TrainConfig:
        """A fine-tuning config keeping everything the envelope fixes from the parents' cards."""
        from sos_core.distill.config import LossWeights, config_from_dict

        start_from = self.teacher if kind == "teacher" else self.active
        card = start_from.card
        cfg: dict[str, Any] = {
            "kind": kind,
            "dataset": str(data_dir),
            "out": str(self.work / kind),
            "model": {"key": card.architecture, "kwargs": _plain(card.kwargs)},
            "modalities": list(self.active.card.modalities) or ["slice", "ceph"],
            # A student that reads a modality at another size trains at its training size.
            **_student_sizes(self.active.card, kind),
            "crop_size": int(self.teacher.card.input_size[0]),
            "crop_context": float(card.preprocessing.get("crop_context", 1.5)),
            "epochs": self.opts.teacher_epochs if kind == "teacher" else self.opts.student_epochs,
            "batch_size": self.opts.batch_size,
            "lr": self.opts.lr,
            "patience": self.opts.patience,
            "seed": self.opts.seed,
            "device": self.opts.device,
            "version": f"{kind}-retrain-{self.run_id}",
            "init_from": str(start_from.folder),
        }
        if teacher_dir is not None:
            cfg["teacher"] = str(teacher_dir)
            cfg["loss"] = dataclasses.asdict(self.opts.loss or LossWeights())
            if self.opts.shift is not None:
                cfg["shift"] = self.opts.shift
        return config_from_dict(cfg)

    def _settle(
        self, role: str, result: TrainResult, parent: ModelVersion, data: dict[str, Any]
    ) -> None:
        """The parent's temperature unless the queue's validation split can refit it."""
        self.calibration[role] = settle_temperature(
            result.model_dir,
            parent.card,
            validation_cases=int(data["splits"]["val"]),
            min_cases=self.opts.min_calibration_cases,
        )

    def _register_teacher(
        self, result: TrainResult, cfg: TrainConfig, data: dict[str, Any]
    ) -> ModelVersion:
        return self.registry.register(
            result.model_dir,
            role="teacher",
            lineage={
                "parent": self.teacher.version,
                "run_id": self.run_id,
                "data": data,
                "seeds": {"teacher": cfg.seed},
                "config": _portable(cfg),
                "training": _training(result),
                "calibration": self.calibration["teacher"],
            },
            card_changes={
                "parent_version": self.teacher.version,
                "training_data": data,
                "origin": f"sos_core {__version__} retrain run {self.run_id} (teacher fine-tune)",
            },
            actor=self.opts.actor,
        )


def _student_sizes(card: ModelCard, kind: str) -> dict[str, Any]:
    """The active student's training size and, for a student run, the sizes it reads
    modalities at where they differ (so the candidate's card keeps them, RG-6)."""
    sizes: dict[str, Any] = {"input_size": int(card.input_size[0])}
    if kind == "student" and card.modality_input_sizes:
        sizes["read_sizes"] = {m: int(s[0]) for m, s in card.modality_input_sizes.items()}
    return sizes


def _plain(value: Any) -> Any:
    """Plain JSON data from a card's read-only mappings."""
    return json.loads(json.dumps(value, default=dict))


def _portable(cfg: TrainConfig) -> dict[str, Any]:
    """The run config with folder paths cut to base names (DI-5: paths may hold names)."""
    d = cfg.to_dict()
    for key in ("dataset", "out", "teacher", "init_from"):
        if d.get(key):
            d[key] = Path(d[key]).name
    return json.loads(json.dumps(d))


def _training(result: TrainResult) -> dict[str, Any]:
    return {
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "history": list(result.history),
    }


class _Phases:
    """Maps each phase's own 0..1 progress onto its share of the whole run."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress

    def done(self, fraction: float) -> None:
        if self._progress is not None:
            self._progress(min(1.0, max(0.0, fraction)))

    def span(self, lo: float, hi: float) -> Progress:
        return lambda f: self.done(lo + (hi - lo) * f)
