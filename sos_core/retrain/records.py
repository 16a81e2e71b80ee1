"""Records of a retraining run: its options and its report (a typed result, never a bare dict)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from sos_core.distill.config import LossWeights
from sos_core.errors import ParameterError

RetrainStatus = Literal[
    "promoted",  # the candidate passed the gate and is now active
    "rejected",  # the gate kept the active model; the candidate is kept with its report
    "nothing_to_learn",  # no new labels (after removing locked cases): nothing was trained
    "too_few_labels",  # fewer labels than a train/validation split needs
    "no_locked_set",  # no locked validation set to judge a candidate on
    "already_running",  # another retraining run holds the lock
    "cancelled",  # the caller cancelled; nothing was registered
    "refused",  # the candidate left the change envelope (RG-6); nothing was registered
]


@dataclass(frozen=True, slots=True)
class RetrainOptions:
    """How a retraining run trains. Epoch counts are maxima (early stopping may end sooner).

    lr: fine-tuning learning rate (lower than training from scratch). val_fraction: share of
    the queue held out per stage for early stopping and temperature fitting. device: "auto",
    "cpu", "cuda", "cuda:N" or "mps". loss: student loss weights (None: the defaults).
    min_calibration_cases: below this many validation cases a candidate keeps its parent's
    calibration temperature instead of one fitted on them (see `calibration`).
    """

    teacher_epochs: int = 10
    student_epochs: int = 15
    batch_size: int = 16
    lr: float = 1e-3
    patience: int = 5
    seed: int = 0
    device: str = "auto"
    val_fraction: float = 0.2
    min_labels: int = 2
    min_calibration_cases: int = 30
    loss: LossWeights | None = None
    shift: float | None = None  # students' shift/zoom augmentation; None: the training default
    actor: str = "retrain"

    def __post_init__(self) -> None:
        if min(self.teacher_epochs, self.student_epochs, self.batch_size, self.patience) < 1:
            raise ParameterError("Epochs, batch size and patience must be at least 1.")
        if not 0.0 < self.val_fraction < 1.0:
            raise ParameterError("The validation fraction must lie strictly between 0 and 1.")
        if self.lr <= 0 or self.min_labels < 2:
            raise ParameterError("The learning rate must be positive and min_labels at least 2.")
        if self.min_calibration_cases < 1:
            raise ParameterError("min_calibration_cases must be at least 1.")

    def replace(self, **changes: Any) -> RetrainOptions:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class RetrainReport:
    """What a retraining run did. `message` is one sentence for the person who asked.

    active_version: the active student after the run. parent_version: the one it started from.
    gate: the gate decision as a JSON dict (see `gate.GateDecision.to_dict`), None if not gated.
    report_path: the run's `report.json` in the registry, None when nothing was trained.
    """

    status: RetrainStatus
    message: str
    run_id: str | None = None
    active_version: str | None = None
    parent_version: str | None = None
    candidate_version: str | None = None
    teacher_version: str | None = None
    n_labels: int = 0
    per_stage: Mapping[int, int] = field(default_factory=dict)
    excluded_locked: int = 0
    gate: Mapping[str, Any] | None = None
    problems: tuple[str, ...] = ()
    report_path: Path | None = None
    seconds: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "per_stage", MappingProxyType(dict(self.per_stage)))

    @property
    def promoted(self) -> bool:
        return self.status == "promoted"

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["per_stage"] = {str(k): v for k, v in self.per_stage.items()}
        out["gate"] = dict(self.gate) if self.gate is not None else None
        out["problems"] = list(self.problems)
        out["report_path"] = str(self.report_path) if self.report_path else None
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RetrainReport:
        values = dict(data)
        values["per_stage"] = {int(k): int(v) for k, v in values.get("per_stage", {}).items()}
        values["problems"] = tuple(values.get("problems", ()))
        path = values.get("report_path")
        values["report_path"] = Path(path) if path else None
        return cls(**values)
