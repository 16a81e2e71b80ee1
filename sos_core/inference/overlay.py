"""Export rendering: image + Grad-CAM heat map + suggested box + stage text, as an RGB array.

Only for files (PNG export, `sos predict --overlay`); the desktop shows the map as a separate
image layer with its own LUT and opacity (STYLE E).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from sos_core.inference.prediction import Prediction
from sos_core.preprocess import normalise_intensity


def render_overlay(
    pixels: np.ndarray, prediction: Prediction, *, opacity: float = 0.4, reviewer: str = ""
) -> np.ndarray:
    """An RGB uint8 picture (at least 512 px wide) for reports and `--overlay`."""
    grey = (normalise_intensity(pixels) * 255).astype(np.uint8)
    scale = max(1.0, 512 / grey.shape[1])
    size = (round(grey.shape[1] * scale), round(grey.shape[0] * scale))
    grey = cv2.resize(grey, size, interpolation=cv2.INTER_LINEAR)
    rgb = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    if prediction.cam is not None:
        heat = cv2.resize((prediction.cam * 255).astype(np.uint8), size)
        colour = cv2.applyColorMap(heat, cv2.COLORMAP_JET)
        alpha = (opacity * (heat.astype(np.float32) / 255))[..., None]
        rgb = (rgb * (1 - alpha) + colour * alpha).astype(np.uint8)
    if prediction.box is not None:
        x0, y0, x1, y1 = (round(v * scale) for v in prediction.box)
        cv2.rectangle(rgb, (x0, y0), (x1, y1), (0, 255, 255), 2)
    footer = np.zeros((70, rgb.shape[1], 3), np.uint8)
    title = (
        f"Stage {prediction.stage}: {prediction.stage_name} ({max(prediction.probabilities):.0%})"
    )
    cv2.putText(footer, title, (8, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)
    meta = f"model {prediction.model_version} on {prediction.device}"
    if reviewer:
        meta += f" | reviewer {reviewer}"
    if prediction.flags:
        meta += " | needs review: " + ", ".join(prediction.flags)
    cv2.putText(footer, meta[:110], (8, 52), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (200, 200, 200), 1)
    cv2.putText(
        footer,
        "Research use only - not a clinical device",
        (8, 66),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.35,
        (150, 150, 150),
        1,
    )
    return cv2.cvtColor(np.vstack([rgb, footer]), cv2.COLOR_BGR2RGB)


def write_overlay(path: str | Path, pixels: np.ndarray, prediction: Prediction) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    img = render_overlay(pixels, prediction)
    if not cv2.imwrite(str(out), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
        from sos_core.errors import ParameterError

        raise ParameterError(
            f"could not write {out.name}; check the folder exists and is writable."
        )
    return out
