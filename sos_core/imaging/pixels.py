"""Pixel conversions shared by every DICOM loader: modality units, grey levels, display window.

The single-file reader and the series reader both go through these functions, so a slice read
alone and the same slice read inside a series give identical values and dtypes.

Typical use for a series (one dtype for every slice, no float64 copy of the volume)::

    t = modality_transform(first_header)
    dtype = t.output_dtype(raw_min, raw_max)     # stored-value range over all slices
    for i, raw in enumerate(raw_slices):
        t.apply(raw, dtype=dtype, out=volume[i])

`ModalityTransform.apply` folds MONOCHROME1 inversion into the same affine step, so bone is
bright for every photometric interpretation. All functions are pure and thread-safe.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

# pydicom is imported where a DICOM is converted, not here: a PNG's path through this module
# (to_grey, percentile_window) should not pay pydicom's 0.2 s import.
if TYPE_CHECKING:
    from pydicom.dataset import Dataset

logger = logging.getLogger(__name__)

GREY_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma weights (the same as Pillow's ``convert("L")``)."""

_CHUNK = 1 << 22  # elements per temporary: bounds the float64/int64 scratch to 32 MiB
_INT_DTYPES = (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.int64)

WARN_MONOCHROME1 = (
    "The image was stored with inverted grey levels (MONOCHROME1) and has been inverted so "
    "that bone appears bright."
)
_COLOUR_WORDS = {
    "PALETTE COLOR": "palette colour",
    "RGB": "RGB colour",
    "YBR_FULL": "YBR colour",
    "YBR_FULL_422": "YBR colour",
    "YBR_ICT": "YBR colour",
    "YBR_RCT": "YBR colour",
}


def colour_warning(kind: str = "colour") -> str:
    """The sentence shown when a colour image was converted to grey levels."""
    return (
        f"The image was stored in {kind} and has been converted to grey levels for review; "
        "colour information is not used."
    )


def smallest_exact_dtype(
    lo: float, hi: float, *, integral: bool = True, signed: bool = False
) -> np.dtype:
    """Return the smallest dtype that holds every value in [lo, hi] exactly.

    Parameters
    ----------
    lo, hi
        The value range (modality units).
    integral
        False when the values are not whole numbers (a non-integer Rescale Slope or
        Intercept); float32 is returned then.
    signed
        Only consider signed integer types, e.g. for CT whose HU range can be negative even
        when this particular image holds no negative value.

    Returns
    -------
    numpy.dtype
        uint8, int8, uint16, int16, uint32, int32 or int64 (at equal size the unsigned type
        when ``lo >= 0`` and not `signed`), or float32 (non-integral values) / float64 (integral
        ranges beyond int64).
    """
    if not integral or not (math.isfinite(lo) and math.isfinite(hi)):
        return np.dtype(np.float32)
    for candidate in _INT_DTYPES:
        if signed and np.dtype(candidate).kind == "u":
            continue
        info = np.iinfo(candidate)
        if info.min <= lo and hi <= info.max:
            return np.dtype(candidate)
    return np.dtype(np.float64)


def stored_range(ds: Any) -> tuple[int, int]:
    """The range of stored values that BitsStored and PixelRepresentation allow."""
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 16)
    if int(ds.get("PixelRepresentation") or 0) == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


@dataclass(frozen=True, slots=True)
class ModalityTransform:
    """Stored values -> modality units (HU for CT), with MONOCHROME1 inversion folded in.

    slope, intercept
        Rescale Slope / Intercept (1, 0 when absent or when a Modality LUT is used).
    lut
        A dataset holding a Modality LUT Sequence, or None.
    mirror
        For MONOCHROME1, the constant K with ``shown = K - modality_value`` (the modality range
        is mirrored onto itself); None for MONOCHROME2.
    signed
        True when the values the header allows include negatives (CT HU, signed pixels):
        `apply` then picks a signed dtype even for an image without negative values, so a
        signed 16-bit image stays int16.
    """

    slope: float = 1.0
    intercept: float = 0.0
    lut: Dataset | None = None
    mirror: float | None = None
    signed: bool = False

    @property
    def integral(self) -> bool:
        """True when every output value is a whole number."""
        if self.lut is not None:
            return True
        return all(float(v).is_integer() for v in (self.slope, self.intercept, self.mirror or 0))

    def _affine(self) -> tuple[float, float]:
        # shown = a * stored + b, inversion included
        if self.mirror is None:
            return self.slope, self.intercept
        return -self.slope, self.mirror - self.intercept

    def output_range(self, raw_lo: float, raw_hi: float) -> tuple[float, float]:
        """The output value range for stored values in [raw_lo, raw_hi]."""
        if self.lut is not None:
            depth = int(self.lut.ModalityLUTSequence[0].LUTDescriptor[2])
            return 0.0, float(2**depth - 1)
        a, b = self._affine()
        ends = (a * raw_lo + b, a * raw_hi + b)
        return min(ends), max(ends)

    def output_dtype(self, raw_lo: float, raw_hi: float) -> np.dtype:
        """Smallest exact dtype for stored values in [raw_lo, raw_hi] (see module docstring)."""
        return smallest_exact_dtype(
            *self.output_range(raw_lo, raw_hi), integral=self.integral, signed=self.signed
        )

    def apply(
        self, arr: np.ndarray, *, dtype: np.dtype | None = None, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Convert stored values to modality units.

        Parameters
        ----------
        arr
            Stored values as decoded by pydicom, any shape.
        dtype
            Output dtype; None picks the smallest exact one for this array's value range.
            An integer dtype too small for the values raises ValueError.
        out
            Optional array of ``arr.shape`` to write into (e.g. one slice of a volume).

        Returns
        -------
        numpy.ndarray
            The converted values; may be `arr` itself when nothing changes.
        """
        if self.lut is not None:
            from pydicom.pixels import apply_modality_lut

            arr = apply_modality_lut(arr, self.lut)
            if self.mirror is not None:
                arr = self.mirror - arr.astype(np.int64)
            return _store(arr, 1, 0, dtype, out, signed=self.signed)
        a, b = self._affine()
        return _store(arr, a, b, dtype, out, signed=self.signed)


def modality_transform(ds: Dataset, frame: int | None = None) -> ModalityTransform:
    """Read the Modality LUT / Rescale and the photometric interpretation of `ds`.

    Rescale values come from the top level, else from the (shared, else per-frame `frame`)
    Pixel Value Transformation functional group of enhanced multi-frame objects.
    """
    if ds.get("ModalityLUTSequence"):
        lo_hi = (0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1))
        mirror = sum(lo_hi) if _is_monochrome1(ds) else None
        return ModalityTransform(lut=ds, mirror=mirror)
    slope, intercept = _rescale(ds, frame)
    lo, hi = stored_range(ds)
    mirror = slope * (lo + hi) + 2 * intercept if _is_monochrome1(ds) else None
    ends = (slope * lo + intercept, slope * hi + intercept)
    return ModalityTransform(slope, intercept, None, mirror, signed=min(ends) < 0)


def to_modality_units(
    arr: np.ndarray, ds: Dataset, *, dtype: np.dtype | None = None, frame: int | None = None
) -> np.ndarray:
    """Shortcut for ``modality_transform(ds, frame).apply(arr, dtype=dtype)`` (monochrome)."""
    return modality_transform(ds, frame).apply(arr, dtype=dtype)


def convert_pixels(
    arr: np.ndarray, ds: Dataset, *, dtype: np.dtype | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Decoded pixels -> grey levels in modality units, with the warnings to show.

    Colour (RGB, YBR, palette) becomes BT.601 grey in the colour channel's dtype; monochrome goes
    through `modality_transform` (with MONOCHROME1 inverted). `arr` is pydicom's
    ``pixel_array`` (YBR already converted to RGB), frames first when there are several.
    """
    warnings = conversion_warnings(ds)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    samples = int(ds.get("SamplesPerPixel") or 1)
    if photometric == "PALETTE COLOR" and samples == 1:
        from pydicom.pixels import apply_color_lut

        return to_grey(apply_color_lut(arr, ds)), warnings
    if samples > 1:
        return to_grey(arr), warnings
    if arr.dtype.kind == "f":  # Float Pixel Data: no rescale is defined for it
        return arr.astype(arr.dtype.newbyteorder("="), copy=False), warnings
    return to_modality_units(arr, ds, dtype=dtype), warnings


def conversion_warnings(ds: Dataset) -> tuple[str, ...]:
    """The sentences `convert_pixels` attaches for this header (colour or MONOCHROME1)."""
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    samples = int(ds.get("SamplesPerPixel") or 1)
    if photometric == "PALETTE COLOR" and samples == 1:
        return (colour_warning("palette colour"),)
    if samples > 1:
        return (colour_warning(_COLOUR_WORDS.get(photometric, "colour")),)
    return (WARN_MONOCHROME1,) if _is_monochrome1(ds) else ()


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """Colour samples on the last axis -> BT.601 grey, rounded, in the input's dtype."""
    out_dtype = rgb.dtype.newbyteorder("=")
    flat = rgb.reshape(-1, rgb.shape[-1])[:, :3]
    out = np.empty(flat.shape[0], dtype=out_dtype)
    if flat.shape[1] < 3:  # not a real colour image: keep the first channel
        return rgb[..., 0].astype(out_dtype)
    weights = np.asarray(GREY_WEIGHTS, dtype=np.float64)
    rows = _CHUNK // 4  # each row becomes 3 float64 values in the product
    for start in range(0, flat.shape[0], rows):
        grey = flat[start : start + rows] @ weights
        out[start : start + rows] = np.rint(grey) if out_dtype.kind in "iu" else grey
    return out.reshape(rgb.shape[:-1])


def default_window(ds: Dataset | None, arr: np.ndarray) -> tuple[float, float]:
    """The (center, width) to show `arr` with, in the same units as `arr`.

    From Window Center/Width (top level or the enhanced VOI LUT functional group) when present,
    else from a VOI LUT Sequence's input range, else from the 0.5-99.5 % percentiles of the
    data. For MONOCHROME1 the header window is mirrored like the pixels.
    """
    window = _header_window(ds) if ds is not None else None
    if window is not None:
        center, width = window
        if ds is not None and _is_monochrome1(ds) and int(ds.get("SamplesPerPixel") or 1) == 1:
            mirror = modality_transform(ds).mirror
            if mirror is not None:
                center = mirror - center
        return float(center), float(width)
    return percentile_window(arr)


def percentile_window(arr: np.ndarray) -> tuple[float, float]:
    """A window spanning the 0.5-99.5 % percentiles, from at most ~1 M sampled values."""
    flat = arr.reshape(-1)
    if flat.size == 0:
        return 0.0, 1.0
    step = max(1, flat.size // 1_000_000)
    lo, hi = (float(v) for v in np.percentile(flat[::step], (0.5, 99.5)))
    if not hi > lo:
        return lo, 1.0
    return (lo + hi) / 2.0, hi - lo


def _header_window(ds: Dataset) -> tuple[float, float] | None:
    for source in _voi_sources(ds):
        center, width = _first(source.get("WindowCenter")), _first(source.get("WindowWidth"))
        if center is not None and width is not None and width > 0:
            return center, width
        if source.get("VOILUTSequence"):
            descriptor = source.VOILUTSequence[0].get("LUTDescriptor")
            if descriptor and len(descriptor) == 3:
                entries = int(descriptor[0]) or 65536
                return float(descriptor[1]) + entries / 2.0, float(entries)
    return None


def _voi_sources(ds: Dataset) -> list[Dataset]:
    sources = [ds]
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        items = ds.get(group)
        if items:
            voi = items[0].get("FrameVOILUTSequence")
            if voi:
                sources.append(voi[0])
    return sources


def _first(value: Any) -> float | None:
    """First value of a possibly multi-valued number; None when absent or not a number."""
    if value is None or value == "":
        return None
    if not isinstance(value, (int, float, str)):
        value = value[0] if len(value) else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _rescale(ds: Dataset, frame: int | None) -> tuple[float, float]:
    sources = [ds]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        sources.append(shared[0])
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame:
        sources.append(per_frame[frame if frame is not None and frame < len(per_frame) else 0])
    for source in sources:
        if source is not ds:
            transform = source.get("PixelValueTransformationSequence")
            source = transform[0] if transform else None
        if source is not None and ("RescaleSlope" in source or "RescaleIntercept" in source):
            slope = _first(source.get("RescaleSlope"))
            intercept = _first(source.get("RescaleIntercept"))
            slope = 1.0 if slope is None or slope == 0 else slope
            return slope, intercept or 0.0
    return 1.0, 0.0


def _is_monochrome1(ds: Any) -> bool:
    return str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1"


def _store(
    arr: np.ndarray,
    a: float,
    b: float,
    dtype: np.dtype | None,
    out: np.ndarray | None,
    *,
    signed: bool = False,
) -> np.ndarray:
    """Write ``a * arr + b`` exactly into the smallest (or given) dtype, in bounded chunks."""
    native = arr.dtype.newbyteorder("=")
    if arr.size == 0:
        return arr.astype(dtype or native)
    raw_lo, raw_hi = float(arr.min()), float(arr.max())
    ends = (a * raw_lo + b, a * raw_hi + b)
    integral = float(a).is_integer() and float(b).is_integer()
    target = (
        np.dtype(dtype)
        if dtype is not None
        else smallest_exact_dtype(min(ends), max(ends), integral=integral, signed=signed)
    )
    if target.kind in "iu" and not integral:
        raise ValueError("an integer dtype cannot hold non-integer modality values exactly")
    if target.kind in "iu":
        info = np.iinfo(target)
        if min(ends) < info.min or max(ends) > info.max:
            raise ValueError("the requested dtype is too small for the modality values")
    if a == 1 and b == 0 and out is None and target == native:
        return arr.astype(native, copy=False)
    if out is not None and not out.flags.c_contiguous:
        out[...] = _store(arr, a, b, target, None)
        return out
    if out is None:
        out = np.empty(arr.shape, dtype=target)
    if a == 1 and b == 0:
        out[...] = arr
        return out
    src, dst = np.ascontiguousarray(arr).reshape(-1), out.reshape(-1)
    scratch = np.int64 if integral and target.kind in "iu" else np.float64
    a_s, b_s = (int(a), int(b)) if scratch is np.int64 else (float(a), float(b))
    for start in range(0, src.size, _CHUNK):
        tmp = src[start : start + _CHUNK].astype(scratch)
        tmp *= a_s
        tmp += b_s
        dst[start : start + _CHUNK] = tmp
    return out
