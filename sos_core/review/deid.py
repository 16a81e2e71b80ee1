"""De-identification on the way into the store: an allow-list, pseudonyms, burned-in text.

We follow the DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile by keeping
an **allow-list** (DI-1) rather than removing a deny-list: only the attributes training needs
are copied out of the header, each parsed into a plain number or a validated code string, so no
free text, name, id, date, UID, private tag or sequence can reach the store. PS3.15 Table E.1-1
is therefore not vendored: nothing outside `ALLOWED_ATTRIBUTES` is ever read for storage.
With Retain Patient Characteristics (option code 113108) sex and age in months are kept, never a
birth date. Source identities become HMAC-SHA256 pseudonyms under a per-store secret kept in its
own file beside the database (DI-2).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from sos_core import __version__
from sos_core.errors import ParameterError, StoreSecretMissing
from sos_core.review.snapshot import publish_new

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

logger = logging.getLogger(__name__)

PROFILE = "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile (allow-list)"
PROFILE_CODE = "113100"
RETAIN_PATIENT_CHARACTERISTICS = "113108"
CLEAN_PIXEL_DATA = "113101"
SECRET_BYTES = 32

# Secondary Capture Image Storage and its multi-frame variants: often screenshots with text.
_SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
_CODE_STRING = re.compile(r"^[A-Z0-9_ ]{1,16}$")
_PHOTOMETRIC = frozenset(
    {"MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR", "YBR_FULL", "YBR_FULL_422"}
)
_AGE = re.compile(r"^(\d{3})([DWMY])$")


def _code(value: Any) -> str | None:
    text = str(value).strip().upper()
    return text if _CODE_STRING.match(text) else None


def _photometric(value: Any) -> str | None:
    text = str(value).strip().upper()
    return text if text in _PHOTOMETRIC else None


def _floats(n: int) -> Callable[[Any], list[float] | None]:
    def parse(value: Any) -> list[float] | None:
        if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
            return None
        out = [float(v) for v in value]
        return out if len(out) == n and all(math.isfinite(v) for v in out) else None

    return parse


def _float(value: Any) -> float | None:
    out = float(value)
    return out if math.isfinite(out) else None


def _uint16(value: Any) -> int | None:
    out = int(value)
    return out if 0 <= out <= 65535 else None


# Attribute keyword -> parser to a JSON value. Nothing else is ever copied (DI-1).
ALLOWED_ATTRIBUTES: dict[str, Callable[[Any], Any]] = {
    "Modality": _code,
    "PixelSpacing": _floats(2),
    "ImagerPixelSpacing": _floats(2),
    "SliceThickness": _float,
    "Rows": _uint16,
    "Columns": _uint16,
    "SamplesPerPixel": _uint16,
    "BitsAllocated": _uint16,
    "BitsStored": _uint16,
    "HighBit": _uint16,
    "PixelRepresentation": _uint16,
    "PhotometricInterpretation": _photometric,
    "RescaleSlope": _float,
    "RescaleIntercept": _float,
    "ImageOrientationPatient": _floats(6),
    "ImagePositionPatient": _floats(3),
}
# Enhanced multi-frame objects keep spacing inside the shared functional groups.
_FUNCTIONAL_GROUP_ATTRIBUTES = {
    "PixelSpacing": "PixelMeasuresSequence",
    "SliceThickness": "PixelMeasuresSequence",
    "ImageOrientationPatient": "PlaneOrientationSequence",
}


@dataclass(frozen=True, slots=True)
class DeidHeader:
    """The de-identified part of a DICOM header that the store may keep.

    identity: the source series/instance UID, used only to derive the pseudonym; never stored,
        logged or shown (hence excluded from repr).
    burned_in: the header's BurnedInAnnotation ("yes"/"no") or "unknown".
    """

    attributes: dict[str, Any]
    patient_sex: str | None
    patient_age_months: int | None
    burned_in: Literal["yes", "no", "unknown"]
    secondary_capture: bool
    identity: str | None = field(default=None, repr=False)

    @property
    def modality(self) -> str | None:
        return self.attributes.get("Modality")

    @property
    def pixel_spacing(self) -> tuple[float, float] | None:
        for key in ("PixelSpacing", "ImagerPixelSpacing"):
            value = self.attributes.get(key)
            if value is not None and all(v > 0 for v in value):
                return (float(value[0]), float(value[1]))
        return None


def deidentify_header(ds: Dataset, *, retain_patient_characteristics: bool = False) -> DeidHeader:
    """Copy the allow-listed attributes out of `ds` as plain, validated JSON values."""
    attributes: dict[str, Any] = {}
    for keyword, parse in ALLOWED_ATTRIBUTES.items():
        raw = _lookup(ds, keyword)
        if raw is None:
            continue
        try:
            value = parse(raw)
        except (TypeError, ValueError, OverflowError):
            value = None
        if value is None:
            # Keyword only: the value may be anything, and logs must hold no header value.
            logger.debug("attribute %s dropped: not a valid value", keyword)
            continue
        attributes[keyword] = value
    sex = age = None
    if retain_patient_characteristics:
        sex = _sex(ds)
        age = _age_months(ds)
    burned = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    sop_class = str(ds.get("SOPClassUID", "") or "")
    identity_uid = str(ds.get("SeriesInstanceUID", "") or ds.get("SOPInstanceUID", "") or "")
    return DeidHeader(
        attributes=attributes,
        patient_sex=sex,
        patient_age_months=age,
        burned_in="yes" if burned == "YES" else "no" if burned == "NO" else "unknown",
        secondary_capture=sop_class.startswith(_SECONDARY_CAPTURE_PREFIX),
        identity=f"dicom:{identity_uid}" if identity_uid else None,
    )


def _lookup(ds: Dataset, keyword: str) -> Any:
    value = ds.get(keyword)
    if value is not None and value != "":
        return value
    seq_name = _FUNCTIONAL_GROUP_ATTRIBUTES.get(keyword)
    shared = ds.get("SharedFunctionalGroupsSequence")
    if seq_name and shared:
        inner = shared[0].get(seq_name)
        if inner:
            return inner[0].get(keyword)
    return None


def _sex(ds: Dataset) -> str | None:
    text = str(ds.get("PatientSex", "") or "").strip().upper()
    return text if text in ("M", "F", "O") else None


def _age_months(ds: Dataset) -> int | None:
    """PatientAge as whole months; else from birth and study dates (the dates are not kept)."""
    match = _AGE.match(str(ds.get("PatientAge", "") or "").strip().upper())
    if match:
        n, unit = int(match.group(1)), match.group(2)
        return {"D": n * 12 // 365, "W": n * 12 // 52, "M": n, "Y": n * 12}[unit]
    birth = _date(ds.get("PatientBirthDate"))
    seen = next(
        (d for k in ("StudyDate", "AcquisitionDate", "ContentDate") if (d := _date(ds.get(k)))),
        None,
    )
    if birth is None or seen is None or seen < birth:
        return None
    months = (seen.year - birth.year) * 12 + seen.month - birth.month
    return months - (1 if seen.day < birth.day else 0)


def _date(value: Any) -> date | None:
    text = str(value or "").strip()
    if not re.fullmatch(r"\d{8}", text):
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def provenance(*, retain_patient_characteristics: bool, redacted: bool) -> dict[str, Any]:
    """What de-identification was applied to a case (profile, options, tool, version)."""
    options = [PROFILE_CODE]
    if retain_patient_characteristics:
        options.append(RETAIN_PATIENT_CHARACTERISTICS)
    if redacted:
        options.append(CLEAN_PIXEL_DATA)
    return {
        "profile": PROFILE,
        "options": options,
        "kept_attributes": sorted(ALLOWED_ATTRIBUTES),
        "table_edition": "allow-list; PS3.15 Table E.1-1 not vendored",
        "tool": "sos_core.review.deid",
        "tool_version": __version__,
    }


def apply_redactions(pixels: np.ndarray, boxes: Sequence[Sequence[float]]) -> np.ndarray:
    """A copy of `pixels` with each [x0, y0, x1, y1] box filled with the image minimum."""
    out = np.array(pixels, copy=True)
    rows, cols = out.shape[:2]
    fill = out.min() if out.size else 0
    for box in boxes:
        if len(box) != 4 or not all(math.isfinite(float(v)) for v in box):
            raise ParameterError("A redaction box needs four finite numbers [x0, y0, x1, y1].")
        x0, y0, x1, y1 = (float(v) for v in box)
        c0, c1 = max(0, math.floor(min(x0, x1))), min(cols, math.ceil(max(x0, x1)))
        r0, r1 = max(0, math.floor(min(y0, y1))), min(rows, math.ceil(max(y0, y1)))
        out[r0:r1, c0:c1] = fill
    return out


def content_hash(pixels: np.ndarray) -> str:
    """SHA-256 over dtype, shape and the C-order pixel bytes: the store's dedupe key."""
    arr = np.ascontiguousarray(pixels)
    h = hashlib.sha256(f"{arr.dtype.str}|{arr.shape}|".encode("ascii"))
    h.update(arr.tobytes())
    return h.hexdigest()


def pseudonym(secret: bytes, text: str) -> str:
    """HMAC-SHA256 of `text` under the store's secret, as hex (DI-2)."""
    return hmac.new(secret, text.encode("utf-8"), hashlib.sha256).hexdigest()


def secret_fingerprint(secret: bytes) -> str:
    """A short public check that a secret file belongs to a store (kept in the database)."""
    return pseudonym(secret, "sos-review secret fingerprint")[:16]


def load_or_create_secret(path: Path, *, create: bool) -> bytes:
    """Read the store's pseudonymisation key, or create it atomically (mode 0600).

    Raises
    ------
    StoreSecretMissing
        The file is absent and `create` is False, or it is not a key this store wrote.
    """
    if not path.exists():
        if not create:
            raise StoreSecretMissing(
                f"The pseudonymisation key {path.name} beside the review store is missing; "
                "restore it from the store's backup before adding cases.",
                path=path,
            )
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(SECRET_BYTES))
            fh.flush()
            os.fsync(fh.fileno())
        publish_new(tmp, path)  # never replaces a key another window created meanwhile
    data = path.read_bytes()
    if len(data) != SECRET_BYTES:
        raise StoreSecretMissing(
            f"The pseudonymisation key {path.name} beside the review store is damaged; restore "
            "it from the store's backup.",
            path=path,
        )
    return data
