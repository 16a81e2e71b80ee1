"""Contact sheet of a phantom dataset: a few cases per stage, SOS boxes drawn, crops enlarged."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from sos_core.errors import ParameterError
from sos_core.phantom.stages import N_STAGES, STAGE_NAMES

logger = logging.getLogger(__name__)

BOX_COLOUR = (40, 40, 230)  # BGR red
SLICE_WINDOW_HU = (-350.0, 1900.0)
_PREFERENCE = ("slice", "cbct", "ceph")


def _display(row: dict[str, Any], root: Path) -> np.ndarray:
    """8-bit display image of one manifest row (slice window for HU, full range for cephs)."""
    path = root / row["file"]
    if row["modality"] == "cbct":
        from sos_core.imaging import open_study
        from sos_core.imaging.reformat import sagittal_slice

        study = open_study(path)
        hu = np.asarray(sagittal_slice(study, int(row["midline_index"])).pixels, dtype=np.float32)
    else:
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise ParameterError(f"{path.name} could not be read for the preview.")
        if row["modality"] == "ceph":
            return (raw.astype(np.float32) / 257.0).clip(0, 255).astype(np.uint8)
        hu = raw.astype(np.float32) - float(row.get("hu_offset", 1024))
    lo, hi = SLICE_WINDOW_HU
    return ((hu - lo) / (hi - lo) * 255.0).clip(0, 255).astype(np.uint8)


def _tile(row: dict[str, Any], root: Path, cell: int) -> np.ndarray:
    img = _display(row, root)
    h, w = img.shape
    scale = cell / max(h, w)
    small = cv2.resize(
        img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    full = np.zeros((cell, cell), np.uint8)
    full[: small.shape[0], : small.shape[1]] = small
    x0, y0, x1, y1 = row["sos_box"]
    crop = img[
        max(0, int(y0)) : max(1, int(np.ceil(y1))), max(0, int(x0)) : max(1, int(np.ceil(x1)))
    ]
    crop = cv2.resize(crop, (cell // 2, cell // 2), interpolation=cv2.INTER_NEAREST)
    tile = cv2.cvtColor(
        np.hstack([full, np.vstack([crop, np.zeros((cell - cell // 2, cell // 2), np.uint8)])]),
        cv2.COLOR_GRAY2BGR,
    )
    p0 = (round(x0 * scale), round(y0 * scale))
    p1 = (round(x1 * scale) - 1, round(y1 * scale) - 1)
    cv2.rectangle(tile, p0, p1, BOX_COLOUR, 1)
    cv2.rectangle(tile, (cell, 0), (cell + cell // 2 - 1, cell // 2 - 1), BOX_COLOUR, 1)
    return tile


def contact_sheet(
    rows: Sequence[dict[str, Any]],
    root: str | Path,
    out: str | Path,
    *,
    per_stage: int = 3,
    cell: int = 192,
    colours: int | None = None,
) -> Path:
    """Write a PNG contact sheet: one row per stage, `per_stage` cases each, SOS boxes drawn.

    Each case shows the full image (box in red) and the box crop enlarged beside it. Uses the
    slices when the dataset has them, else the CBCT mid-sagittal slices, else cephalograms.
    colours: quantise to this many palette colours (smaller files, for documentation).
    """
    root = Path(root)
    modality = next((m for m in _PREFERENCE if any(r["modality"] == m for r in rows)), None)
    if modality is None:
        raise ParameterError("the dataset holds no images to preview.")
    width = per_stage * (cell + cell // 2)
    label_h = 22
    bands = []
    for stage in range(N_STAGES):
        picked = [r for r in rows if r["modality"] == modality and r["stage"] == stage][:per_stage]
        band = np.zeros((cell + label_h, width, 3), np.uint8)
        text = f"{stage}: {STAGE_NAMES[stage]}"
        cv2.putText(
            band, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (230, 230, 230), 1, cv2.LINE_AA
        )
        for k, row in enumerate(picked):
            band[label_h:, k * (cell + cell // 2) : (k + 1) * (cell + cell // 2)] = _tile(
                row, root, cell
            )
        bands.append(band)
    sheet = np.vstack(bands)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(cv2.cvtColor(sheet, cv2.COLOR_BGR2RGB))
    if colours:
        rgb = rgb.quantize(
            colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
    rgb.save(out, optimize=True)
    return out
