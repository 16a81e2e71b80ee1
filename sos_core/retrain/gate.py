"""The promotion gate (RG-5, the "Modification Protocol").

A candidate student becomes active only if, on the locked validation set, it is not worse than
the active student by more than the configured margins: overall accuracy, macro-F1, quadratic
weighted kappa, expected calibration error (lower is better) and the pointing game, and per
stage F1 (stages with too few locked cases are reported, not judged). Both models are scored in
the same run on the same cases and labels. A locked set too small to judge rejects every
candidate: the gate never promotes on no evidence.

The configuration is a versioned JSON file beside the registry (`gate.json`); each change bumps
its version, is appended to `gate_history.jsonl` and is written to the store's audit log.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sos_core.errors import ParameterError
from sos_core.retrain.files import append_line, read_json, sha256_json, write_json_atomic
from sos_core.review.audit import utc_now

logger = logging.getLogger(__name__)

GATE_NAME = "gate.json"
GATE_HISTORY = "gate_history.jsonl"

HIGHER_IS_BETTER: dict[str, bool] = {
    "accuracy": True,
    "f1_macro": True,
    "kappa_quadratic": True,
    "ece": False,
    "pointing_game": True,
}
STAGE_METRICS: dict[str, bool] = {"f1": True, "recall": True, "pointing_game": True}

DEFAULT_MARGINS = {
    "accuracy": 0.02,
    "f1_macro": 0.02,
    "kappa_quadratic": 0.03,
    "ece": 0.03,
    "pointing_game": 0.05,
}
DEFAULT_STAGE_MARGINS = {"f1": 0.10}


def _frozen(d: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType({str(k): float(v) for k, v in d.items()})


@dataclass(frozen=True, slots=True)
class GateConfig:
    """Margins by metric (how much worse than the active model a candidate may be).

    margins: overall metrics (see HIGHER_IS_BETTER). stage_margins: per-stage metrics
    (f1, recall, pointing_game). min_locked_cases: below this the gate rejects.
    min_stage_support: a stage with fewer locked cases is not judged per stage.
    version: bumped by every saved change; 0 is the built-in default.
    """

    margins: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MARGINS))
    stage_margins: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_STAGE_MARGINS))
    min_locked_cases: int = 8
    min_stage_support: int = 2
    version: int = 0

    def __post_init__(self) -> None:
        for name, known in (("margins", HIGHER_IS_BETTER), ("stage_margins", STAGE_METRICS)):
            values = getattr(self, name)
            unknown = sorted(set(values) - set(known))
            if unknown:
                raise ParameterError(f"The gate has no metric named {unknown[0]!r}.")
            if not all(math.isfinite(float(v)) and 0 <= float(v) <= 1 for v in values.values()):
                raise ParameterError("Every gate margin must be a number between 0 and 1.")
            object.__setattr__(self, name, _frozen(values))
        if self.min_locked_cases < 1 or self.min_stage_support < 1:
            raise ParameterError("The gate's minimum case counts must be at least 1.")

    def to_dict(self) -> dict[str, Any]:
        return {
            "margins": dict(self.margins),
            "stage_margins": dict(self.stage_margins),
            "min_locked_cases": self.min_locked_cases,
            "min_stage_support": self.min_stage_support,
            "version": self.version,
        }

    @property
    def hash(self) -> str:
        return sha256_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ParameterError(f"The gate configuration has unknown keys: {', '.join(unknown)}.")
        try:
            return cls(**dict(data))
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"The gate configuration is malformed: {exc}.") from exc


def load_gate_config(registry_root: str | Path) -> GateConfig:
    """The current gate configuration (the built-in default, version 0, until one is saved)."""
    path = Path(registry_root) / GATE_NAME
    if not path.exists():
        return GateConfig()
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise ParameterError(f"The gate configuration {path.name} cannot be read.") from exc
    return GateConfig.from_dict(data.get("config", data))


def save_gate_config(
    registry_root: str | Path,
    config: GateConfig,
    *,
    actor: str,
    reason: str,
    audit: Any = None,
) -> GateConfig:
    """Save a changed gate configuration as the next version; the change is audited.

    `audit` is called like `ReviewStore.record(actor=, action=, subject=, details=)`.
    """
    if not actor.strip() or not reason.strip():
        raise ParameterError("Changing the promotion gate needs who changes it and why.")
    root = Path(registry_root)
    current = load_gate_config(root)
    saved = dataclasses.replace(config, version=current.version + 1)
    doc = {"config": saved.to_dict(), "changed_at": utc_now(), "actor": actor, "reason": reason}
    write_json_atomic(root / GATE_NAME, doc)
    append_line(root / GATE_HISTORY, {**doc, "previous": current.to_dict()})
    if audit is not None:
        audit(
            actor=actor,
            action="gate.change",
            subject="gate",
            details={"version": saved.version, "hash": saved.hash, "reason": reason},
        )
    logger.info("promotion gate configuration is now version %d", saved.version)
    return saved


@dataclass(frozen=True, slots=True)
class GateCheck:
    """One comparison: scope is "overall" or "stage <i>"."""

    metric: str
    scope: str
    active: float
    candidate: float
    margin: float
    higher_is_better: bool
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def sentence(self) -> str:
        worse = "fell" if self.higher_is_better else "rose"
        return (
            f"{self.metric} ({self.scope}) {worse} from {self.active:.3f} to "
            f"{self.candidate:.3f}, beyond the margin of {self.margin:.3f}"
        )


@dataclass(frozen=True, slots=True)
class GateDecision:
    """The gate's verdict, with every comparison and the configuration it used."""

    promote: bool
    reasons: tuple[str, ...]
    checks: tuple[GateCheck, ...]
    config: GateConfig

    @property
    def decision(self) -> str:
        return "promote" if self.promote else "reject"

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "reasons": list(self.reasons),
            "checks": [c.to_dict() for c in self.checks],
            "config": self.config.to_dict(),
            "config_hash": self.config.hash,
        }


def _check(
    metric: str, scope: str, active: float, candidate: float, margin: float, higher: bool
) -> GateCheck:
    a, c = float(active), float(candidate)
    if math.isnan(c):
        passed = False
    elif math.isnan(a):
        passed = True  # nothing to be worse than
    else:
        passed = c >= a - margin - 1e-9 if higher else c <= a + margin + 1e-9
    return GateCheck(metric, scope, a, c, margin, higher, passed)


def decide(
    active: Mapping[str, Any], candidate: Mapping[str, Any], config: GateConfig
) -> GateDecision:
    """Compare two locked-set evaluations (`locked_eval.evaluate_models` results)."""
    n = int(candidate["n"])
    if n != int(active["n"]):
        raise ParameterError("The two models were not scored on the same locked cases.")
    if n == 0:
        reason = "the locked validation set holds no usable case, so no candidate can be judged"
        return GateDecision(False, (reason,), (), config)
    checks = [
        _check(
            m, "overall", active["overall"][m], candidate["overall"][m], margin, HIGHER_IS_BETTER[m]
        )
        for m, margin in config.margins.items()
    ]
    for a_stage, c_stage in zip(active["per_stage"], candidate["per_stage"], strict=True):
        if int(c_stage["support"]) < config.min_stage_support:
            continue
        for m, margin in config.stage_margins.items():
            scope = f"stage {c_stage['stage']}"
            checks.append(_check(m, scope, a_stage[m], c_stage[m], margin, STAGE_METRICS[m]))
    reasons = [c.sentence() for c in checks if not c.passed]
    if n < config.min_locked_cases:
        reasons.insert(
            0,
            f"the locked validation set holds {n} usable case(s); at least "
            f"{config.min_locked_cases} are needed to judge a candidate",
        )
    return GateDecision(not reasons, tuple(reasons), tuple(checks), config)
