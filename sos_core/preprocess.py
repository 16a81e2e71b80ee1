"""The one preprocessing function shared by training, evaluation and inference.

An image in modality units (HU, raw detector values, PNG grey levels) becomes a float32 array of
a fixed square size: intensities mapped robustly to [0, 1] by percentiles (so HU offsets, bit
depths and window settings do not matter), then letterboxed (aspect kept, zero padded). The
returned `Letterbox` maps boxes between image pixels and model-input pixels, both ways.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from sos_core.errors import ParameterError

if TYPE_CHECKING:
    from sos_core.imaging.study import Study

# Percentiles chosen so a few metal or air outliers do not set the range.
LOW_PERCENTILE = 0.5
HIGH_PERCENTILE = 99.5
PREPROCESSING_ID = "percentile-0.5-99.5-letterbox-v1"


@dataclass(frozen=True, slots=True)
class Letterbox:
    """Image → model-input mapping: input = image * scale + (pad_x, pad_y), in pixels."""

    scale: float
    pad_x: float
    pad_y: float
    size: int

    def box_to_input(self, box: tuple[float, float, float, float]) -> tuple[float, ...]:
        x0, y0, x1, y1 = box
        s = self.scale
        return (x0 * s + self.pad_x, y0 * s + self.pad_y, x1 * s + self.pad_x, y1 * s + self.pad_y)

    def box_to_image(self, box: tuple[float, float, float, float]) -> tuple[float, ...]:
        x0, y0, x1, y1 = box
        s = self.scale
        return (
            (x0 - self.pad_x) / s,
            (y0 - self.pad_y) / s,
            (x1 - self.pad_x) / s,
            (y1 - self.pad_y) / s,
        )


def normalise_intensity(pixels: np.ndarray) -> np.ndarray:
    """Map modality units to float32 [0, 1] by the 0.5th and 99.5th percentiles."""
    if pixels.ndim != 2 or min(pixels.shape) < 2:
        raise ParameterError("the image must be a 2-D picture of at least 2 x 2 pixels.")
    arr = pixels.astype(np.float32, copy=False)
    lo, hi = np.percentile(arr, (LOW_PERCENTILE, HIGH_PERCENTILE))
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise ParameterError("the image holds invalid (non-finite) pixel values.")
    span = float(hi - lo) if hi > lo else 1.0
    return np.clip((arr - lo) / span, 0.0, 1.0).astype(np.float32, copy=False)


def letterbox(image01: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Resize to fit a size×size square keeping the aspect ratio; pad the rest with 0."""
    h, w = image01.shape
    scale = size / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image01, (new_w, new_h), interpolation=interp)
    out = np.zeros((size, size), np.float32)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    out[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    return out, Letterbox(
        scale=new_w / w if w >= h else new_h / h, pad_x=float(pad_x), pad_y=float(pad_y), size=size
    )


def prepare_image(pixels: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """The model input for one 2-D image: (size, size) float32 in [0, 1] plus its letterbox."""
    return letterbox(normalise_intensity(pixels), size)


def crop_box(
    image01: np.ndarray,
    box: tuple[float, float, float, float],
    size: int,
    *,
    context: float = 1.0,
) -> np.ndarray:
    """Resample a square around `box` (image pixels, [x0, y0, x1, y1]) to size×size.

    The square side is the box's longer side times `context`; outside the image reads 0.
    Bilinear sampling keeps sub-pixel box positions (jittered boxes) exact.
    """
    x0, y0, x1, y1 = box
    if not (x1 > x0 and y1 > y0):
        raise ParameterError("the SOS box must have a positive width and height.")
    side = max(x1 - x0, y1 - y0) * context
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    s = size / side
    # Maps output pixel centres onto the square in image coordinates.
    matrix = np.array(
        [[s, 0, size / 2 - cx * s - 0.5 + 0.5 * s], [0, s, size / 2 - cy * s - 0.5 + 0.5 * s]],
        np.float64,
    )
    return cv2.warpAffine(
        image01,
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )


def image_from_study(study: Study, slice_index: int | None = None) -> tuple[np.ndarray, int | None]:
    """The 2-D image a model sees for a study, and the sagittal slice used for a volume.

    Images come back as they are; a volume gives its sagittal slice `slice_index`, or the
    automatic mid-sagittal slice when None; a frame stack gives its middle frame.
    """
    if study.kind == "image":
        return study.pixels, None
    if study.kind == "frames":
        index = study.shape[0] // 2 if slice_index is None else slice_index
        if not 0 <= index < study.shape[0]:
            raise ParameterError(f"frame {index} does not exist; the stack has {study.shape[0]}.")
        return study.pixels[index], index
    from sos_core.imaging.midsagittal import find_midsagittal
    from sos_core.imaging.reformat import sagittal_count, sagittal_slice

    index = find_midsagittal(study) if slice_index is None else slice_index
    if not 0 <= index < sagittal_count(study):
        raise ParameterError(
            f"sagittal slice {index} does not exist; the volume has {sagittal_count(study)}."
        )
    return sagittal_slice(study, index).pixels, index


def input_detail_mm(
    spacing: tuple[float, float] | None, shape: tuple[int, ...], input_size: int
) -> float | None:
    """mm of anatomy per model-input pixel: the coarser of the pixel size and the letterbox
    shrink (an upsampled coarse image gains no detail), None when the spacing is unknown."""
    if not spacing:
        return None
    pixel = max(float(spacing[0]), float(spacing[1]))
    return pixel * max(1.0, max(shape[:2]) / input_size)
