"""A fine-tuned model's calibration temperature: refitted only on enough validation cases.

Training fits the temperature on its validation split (Guo et al. 2017,
https://arxiv.org/abs/1706.04599). A 20-label queue leaves 2 to 4 validation cases. When the
model gets them all right, the NLL keeps falling as T shrinks and the fit ends near the search's
lower bound (T about 0.05-0.1), a grossly over-confident model; when it gets them all wrong, T
runs to the upper bound (20). Fine-tuning the shipped student on 20 phantom labels at lr 1e-4
left its predictions on a 60-case locked set unchanged, yet the refitted T (0.09 instead of
0.86) alone raised the locked-set ECE from 0.042 to 0.077 and the gate rejected it
(benchmarks/retrain_end_to_end.py). Below `min_cases` validation cases a candidate therefore
keeps its parent's temperature: fine-tuning starts from the parent's weights, so the parent's
calibration, fitted on its own larger validation set, is the better estimate. The change
envelope allows either (RG-6: weights and temperature may change).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sos_core.durable import write_bytes_atomic

if TYPE_CHECKING:
    from sos_core.models.card import ModelCard

logger = logging.getLogger(__name__)

CARD_NAME = "model.json"  # as in sos_core.models.model_file (imported lazily: it needs torch)


def settle_temperature(
    model_dir: Path, parent: ModelCard, *, validation_cases: int, min_cases: int
) -> dict[str, Any]:
    """Keep the parent's temperature in a freshly trained model folder if too few cases fit it.

    Only the card (`model.json`) of the unregistered folder is rewritten; the weights, and so
    the version's SHA-256, are untouched.

    Parameters
    ----------
    model_dir
        The trained (not yet registered) model folder.
    parent
        The card of the model the training started from.
    validation_cases
        How many cases the training fitted the temperature on.
    min_cases
        The fewest validation cases whose fitted temperature is trusted.

    Returns
    -------
    dict
        For the lineage: `temperature` (the one kept), `source` ("fitted" or "parent"),
        `fitted` (what the training found) and `validation_cases`.
    """
    from sos_core.models.model_file import read_card

    card = read_card(model_dir)
    record = {
        "temperature": card.temperature,
        "source": "fitted",
        "fitted": card.temperature,
        "validation_cases": int(validation_cases),
        "min_cases": int(min_cases),
    }
    if validation_cases >= min_cases:
        return record
    kept = card.replace(temperature=parent.temperature)
    write_bytes_atomic(model_dir / CARD_NAME, kept.to_json().encode("utf-8"))
    logger.info(
        "temperature %.3f fitted on %d case(s) not trusted; kept the parent's %.3f",
        card.temperature,
        validation_cases,
        parent.temperature,
    )
    return {**record, "temperature": parent.temperature, "source": "parent"}
