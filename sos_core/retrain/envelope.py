"""The change envelope of automatic retraining (RG-6, the "Description of Modifications").

Automatic retraining may change a model's weights and its calibration temperature, and the
records that describe them (training data, metrics, version, parent, creation time, origin).
Everything that decides what the model *is* must stay as it was: architecture and its
arguments, input size (per modality too) and channels, preprocessing, the stage scheme and
names (the class list), and the intended-use text. A candidate that differs in any of these
is refused before it is evaluated, and a person has to release it through another path.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sos_core.errors import OutsideChangeEnvelope

if TYPE_CHECKING:
    from sos_core.models.card import ModelCard

logger = logging.getLogger(__name__)

# card field → what it is called in the refusal sentence
ENVELOPE_FIELDS: dict[str, str] = {
    "architecture": "architecture",
    "kwargs": "architecture settings",
    "in_chans": "input channels",
    "input_size": "input size",
    "modality_input_sizes": "input size per modality",
    "preprocessing": "input preprocessing",
    "stage_scheme": "stage scheme",
    "stage_names": "class list",
    "intended_use": "intended-use text",
}

ALLOWED_CHANGES = (
    "weights_sha256",
    "temperature",
    "training_data",
    "metrics",
    "version",
    "parent_version",
    "created",
    "origin",
)
"""Fields automatic retraining may change (documentation; the check compares the others)."""


def envelope_problems(parent: ModelCard, candidate: ModelCard) -> list[str]:
    """What the candidate changes outside the envelope, as short phrases (empty when allowed)."""
    before, after = parent.to_dict(), candidate.to_dict()
    return [
        f"{label} changed"
        for name, label in ENVELOPE_FIELDS.items()
        if before.get(name) != after.get(name)  # to_dict leaves an empty size map out
    ]


def check_envelope(
    parent: ModelCard, candidate: ModelCard, *, path: str | Path | None = None
) -> None:
    """Refuse a candidate that changes more than weights and calibration.

    Raises
    ------
    OutsideChangeEnvelope
        With `.problems` listing every changed field group.
    """
    problems = envelope_problems(parent, candidate)
    if problems:
        logger.warning("candidate refused by the change envelope: %s", "; ".join(problems))
        raise OutsideChangeEnvelope(
            f"The retrained model's {problems[0].removesuffix(' changed')} differs from the "
            "active model's; automatic retraining may change only the weights and the "
            "calibration, so it is refused.",
            path=path,
            problems=tuple(problems),
        )
