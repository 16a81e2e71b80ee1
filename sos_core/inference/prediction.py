"""The `Prediction` record: what the Predictor returns and the app, CLI and review store consume."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# The flags a prediction may carry (DESIGN.md); each comes with one human sentence in `messages`.
FLAG_NAMES = ("low_confidence", "between_stages", "attention_off_target", "unsuitable_image")


@dataclass(frozen=True, slots=True)
class Prediction:
    """One model answer for one 2-D image (a cephalogram or a slice of a volume).

    stage / stage_name: the predicted stage index and its name in the model's scheme.
    probabilities: calibrated, one per stage in scheme order, summing to 1.
    cam: Grad-CAM of the predicted stage, float32 in [0, 1], shape = the image's (rows, cols),
        read-only; None when the caller asked for no map.
    box: suggested SOS box from the map, [x0, y0, x1, y1] in the image's pixels; None if none.
    slice_index: the sagittal slice used for a volume, else None.
    flags / messages: names from FLAG_NAMES and one sentence each, same order.
    model_version: the card's version (with the weights' SHA-256 prefix).
    device: "cpu", "cuda", "mps".
    seconds: wall time of preprocessing + forward + map.
    """

    stage: int
    stage_name: str
    probabilities: tuple[float, ...]
    model_version: str
    device: str
    cam: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None
    slice_index: int | None = None
    flags: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()
    seconds: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.flags) - set(FLAG_NAMES)
        if unknown:
            raise ValueError(f"unknown prediction flags: {sorted(unknown)}")
        if len(self.flags) != len(self.messages):
            raise ValueError("every flag needs exactly one message")
        if self.cam is not None and self.cam.flags.writeable:
            self.cam.flags.writeable = False
