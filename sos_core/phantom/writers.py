"""Writers: CBCT series as DICOM CT files, cephalograms as DICOM DX, images as 16-bit PNG.

Everything is deterministic for a case: UIDs are derived from the case id and seed, dates are
fixed, and the shuffled file names come from the case's own random stream, so the same seed
gives byte-identical files. The DICOM files are synthetic and carry no real person's data.
"""

from __future__ import annotations

import bisect
import logging
import struct
from pathlib import Path

import cv2
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from sos_core import __version__
from sos_core.errors import ParameterError
from sos_core.phantom.records import PhantomImage, PhantomVolume

logger = logging.getLogger(__name__)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
HU_OFFSET = 1024  # slice PNG value = HU + 1024
CEPH_PNG_SCALE = 65535.0  # ceph PNG value = detector units (0..1) * 65535
_IMPLEMENTATION_UID = "1.2.826.0.1.3680043.8.498.1"
_DATE = "20250101"  # fixed so files are reproducible; the data are synthetic


def _uid(*parts: object) -> str:
    return generate_uid(entropy_srcs=["sos-phantom", *[str(p) for p in parts]])


def _base(
    case_id: str, seed: int, modality: str, sop_class: str, subject_sex: str, age: float
) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.Modality = modality
    ds.PatientName = f"Phantom^{case_id}"
    ds.PatientID = case_id
    ds.PatientSex = "M" if subject_sex == "male" else "F"
    ds.PatientAge = f"{min(999, int(age)):03d}Y"
    ds.StudyInstanceUID = _uid(case_id, seed, "study")
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = _DATE
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.Manufacturer = "SOS Review synthetic phantom"
    ds.SoftwareVersions = __version__
    ds.BurnedInAnnotation = "NO"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    return ds


def _meta(ds: Dataset, sop_class: str | None = None) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class or ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = _IMPLEMENTATION_UID
    meta.ImplementationVersionName = "SOS_PHANTOM"
    return meta


# Per-slice elements of a CT series, encoded by hand; everything else is encoded once per series
# by pydicom, which makes writing 256 files many times faster than pydicom's per-file encoding.
_VARYING = (
    Tag(0x0008, 0x0018),  # SOPInstanceUID
    Tag(0x0020, 0x0013),  # InstanceNumber
    Tag(0x0020, 0x0032),  # ImagePositionPatient
    Tag(0x0020, 0x1041),  # SliceLocation
    Tag(0x7FE0, 0x0010),  # PixelData
)


def _encode(ds: Dataset) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_dataset(fp, ds)
    return fp.getvalue()


def _element(group: int, elem: int, vr: str, value: bytes) -> bytes:
    """One explicit-VR little-endian data element, padded to even length."""
    if len(value) % 2:
        value += b"\x00" if vr in ("UI", "OB", "OW") else b" "
    if vr in ("OB", "OW"):
        return struct.pack("<HH2sHI", group, elem, vr.encode(), 0, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr.encode(), len(value)) + value


def _meta_bytes(sop_class: str, sop_instance: str) -> bytes:
    """Preamble, 'DICM' and the file meta group (PS3.10 7.1) for one file."""
    body = b"".join(
        [
            _element(0x0002, 0x0001, "OB", b"\x00\x01"),
            _element(0x0002, 0x0002, "UI", sop_class.encode()),
            _element(0x0002, 0x0003, "UI", sop_instance.encode()),
            _element(0x0002, 0x0010, "UI", str(ExplicitVRLittleEndian).encode()),
            _element(0x0002, 0x0012, "UI", _IMPLEMENTATION_UID.encode()),
            _element(0x0002, 0x0013, "SH", b"SOS_PHANTOM"),
        ]
    )
    length = _element(0x0002, 0x0000, "UL", struct.pack("<I", len(body)))
    return b"\x00" * 128 + b"DICM" + length + body


def _segments(base: Dataset) -> list[bytes]:
    """The constant elements of `base` encoded in the runs between the varying tags."""
    parts = [Dataset() for _ in range(len(_VARYING) + 1)]
    for elem in base:
        parts[bisect.bisect(_VARYING, elem.tag)].add(elem)
    return [_encode(part) for part in parts]


def write_cbct_series(vol: PhantomVolume, folder: str | Path, case_id: str) -> list[Path]:
    """Write `vol` as one CT Image Storage file per slice into `folder` (created).

    Geometry: ImageOrientationPatient [1, 0, 0, 0, 1, 0], ImagePositionPatient of each slice's
    first voxel, PixelSpacing [dy, dx], slices increasing in z. Pixels are int16 HU
    (slope 1, intercept 0). File names are random and unrelated to slice order.
    Returns the written paths in slice order.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    p = vol.subject
    nz, ny, nx = vol.volume.shape
    dz, dy, dx = vol.spacing
    base = _base(case_id, p.seed, "CT", CT_IMAGE_STORAGE, p.sex, p.age)
    base.SeriesInstanceUID = _uid(case_id, p.seed, "cbct")
    base.FrameOfReferenceUID = _uid(case_id, p.seed, "frame")
    base.SeriesNumber = 1
    base.SeriesDescription = "Synthetic CBCT (SOS phantom)"
    base.StudyDescription = "SOS phantom"
    base.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    base.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    base.PixelSpacing = [f"{dy:.6g}", f"{dx:.6g}"]
    base.SliceThickness = f"{dz:.6g}"
    base.SpacingBetweenSlices = f"{dz:.6g}"
    base.Rows, base.Columns = ny, nx
    base.PixelRepresentation = 1
    base.RescaleIntercept = 0
    base.RescaleSlope = 1
    base.RescaleType = "HU"
    base.WindowCenter = 400
    base.WindowWidth = 2500
    base.PatientPosition = "HFS"
    rng = np.random.default_rng(np.random.SeedSequence([p.seed, 0xD1C0]))
    names = {f"{v:012x}.dcm" for v in rng.integers(0, 16**12, size=3 * nz)}
    ordered = sorted(names)[:nz]
    rng.shuffle(ordered)
    x0, y0, z0 = vol.origin
    data = np.ascontiguousarray(vol.volume, dtype="<i2")
    seg = _segments(base)
    paths = []
    for k in range(nz):
        z = z0 + k * dz
        uid = _uid(case_id, p.seed, "cbct", k)
        chunks = [
            _meta_bytes(CT_IMAGE_STORAGE, uid),
            seg[0],
            _element(0x0008, 0x0018, "UI", uid.encode()),
            seg[1],
            _element(0x0020, 0x0013, "IS", str(k + 1).encode()),
            seg[2],
            _element(0x0020, 0x0032, "DS", f"{x0:.6f}\\{y0:.6f}\\{z:.6f}".encode()),
            seg[3],
            _element(0x0020, 0x1041, "DS", f"{z:.6f}".encode()),
            seg[4],
            _element(0x7FE0, 0x0010, "OW", data[k].tobytes()),
            seg[5],
        ]
        path = out / ordered[k]
        path.write_bytes(b"".join(chunks))
        paths.append(path)
    return paths


def ceph_to_uint16(img: PhantomImage) -> np.ndarray:
    """Cephalogram detector units (nominally 0..1) to 16-bit grey values."""
    return np.clip(np.rint(img.image * CEPH_PNG_SCALE), 0, 65535).astype(np.uint16)


def slice_to_uint16(img: PhantomImage) -> np.ndarray:
    """Slice HU to 16-bit grey values: HU + 1024, clipped to 0..65535."""
    return np.clip(np.rint(img.image + HU_OFFSET), 0, 65535).astype(np.uint16)


def write_png16(img: PhantomImage, path: str | Path) -> Path:
    """Write a slice (HU + 1024) or cephalogram (units * 65535) as a 16-bit greyscale PNG."""
    arr = slice_to_uint16(img) if img.modality == "slice" else ceph_to_uint16(img)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), arr):
        raise ParameterError(f"could not write {path.name}; check the folder is writable.")
    return path


def write_ceph_dx(img: PhantomImage, path: str | Path, case_id: str) -> Path:
    """Write a cephalogram as a DX (for presentation) DICOM file with its pixel spacing."""
    if img.modality != "ceph":
        raise ParameterError("only a cephalogram can be written as a DX image.")
    p = img.subject
    ds = _base(case_id, p.seed, "DX", DX_FOR_PRESENTATION, p.sex, p.age)
    ds.SeriesInstanceUID = _uid(case_id, p.seed, "ceph")
    ds.SOPInstanceUID = _uid(case_id, p.seed, "ceph", 0)
    ds.SeriesNumber = 2
    ds.InstanceNumber = 1
    ds.SeriesDescription = "Synthetic lateral cephalogram (SOS phantom)"
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ViewPosition = "LL"
    ds.PatientOrientation = ["A", "F"]  # columns run anterior, rows inferior
    arr = ceph_to_uint16(img)
    ds.Rows, ds.Columns = arr.shape
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [f"{img.pixel_spacing[0]:.6g}", f"{img.pixel_spacing[1]:.6g}"]
    ds.ImagerPixelSpacing = ds.PixelSpacing
    ds.EstimatedRadiographicMagnificationFactor = f"{img.magnification:.6g}"
    ds.WindowCenter = 32768
    ds.WindowWidth = 65535
    ds.PixelData = np.ascontiguousarray(arr, dtype="<u2").tobytes()
    ds.file_meta = _meta(ds)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
