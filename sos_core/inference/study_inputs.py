"""What a prediction needs from a study, without torch: the 2-D image, its kind and detail.

Split from the Predictor so a caller can reduce a study (possibly a 400-slice volume) to the
few arrays the model sees before handing them to a Predictor in another process
(`sos_core.inference.predictor_process`), instead of copying the whole volume across.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sos_core.errors import ParameterError
from sos_core.preprocess import image_from_study, input_detail_mm, prepare_image

if TYPE_CHECKING:
    from sos_core.imaging.study import Study

# Projection radiographs: a lateral cephalogram arrives as one of these DICOM modalities.
_RADIOGRAPH_MODALITIES = frozenset({"DX", "CR", "RG", "DR", "PX"})
# DICOM modalities that can never show the spheno-occipital synchondrosis as the model learned
# it: other imaging physics (ultrasound, MR, nuclear medicine), photographs, radiotherapy
# objects, and X-ray views of other body parts. Such a file is refused by its header, whatever
# the network makes of its pixels. OT (other) and SC (secondary capture) say nothing: not here.
NON_HEAD_VIEW_MODALITIES: dict[str, str] = {
    "US": "an ultrasound image",
    "IVUS": "an intravascular ultrasound image",
    "MR": "an MR image",
    "NM": "a nuclear-medicine image",
    "PT": "a PET image",
    "XC": "a photograph",
    "ES": "an endoscopy image",
    "OP": "an ophthalmic photograph",
    "OPT": "an ophthalmic tomography image",
    "SM": "a microscopy slide image",
    "GM": "a microscopy image",
    "MG": "a mammogram",
    "IO": "an intra-oral radiograph",
    "XA": "an angiogram",
    "RF": "a fluoroscopy image",
    "RTDOSE": "a radiotherapy dose grid",
    "RTIMAGE": "a radiotherapy portal image",
    "ECG": "an ECG",
}


# One CT image in a plane that cannot be read for the stage: the SOS is staged on a mid-sagittal
# slice, so a single axial or coronal slice (a file of an axial CBCT series opened alone, or an
# abdominal CT slice) is refused by its orientation, whatever the network makes of its pixels.
WRONG_PLANE_SLICES: dict[str, str] = {
    "CT-axial": "one axial CT slice",
    "CT-coronal": "one coronal CT slice",
}

# The kinds a model learns, in words.
MODALITY_NAMES: dict[str, str] = {
    "slice": "mid-sagittal CBCT slices",
    "ceph": "lateral cephalograms",
}


@dataclass(frozen=True, slots=True)
class StudyInputs:
    """One study reduced to what the model sees.

    image: the 2-D image in modality units; slice_index: the sagittal slice for a volume.
    kind: "slice", "ceph", a DICOM modality code that cannot be either (US, MR, ... see
    `NON_HEAD_VIEW_MODALITIES`) or None (unknown); detail_mm: mm of anatomy per model-input pixel
    (at the size the model reads this kind at).
    neighbour_slices / neighbour_inputs: for a volume with neighbours > 0, the slices averaged
    (the chosen one included) and each one's prepared model input.
    """

    image: np.ndarray
    slice_index: int | None
    kind: str | None
    detail_mm: float | None
    neighbour_slices: tuple[int, ...] = ()
    neighbour_inputs: tuple[np.ndarray, ...] = ()


def study_inputs(
    study: Study,
    slice: int | None = None,  # noqa: A002
    *,
    neighbours: int = 0,
    input_size: int | Callable[[str | None], int],
) -> StudyInputs:
    """The inputs of `study` for a model of `input_size`, or of the size `input_size(kind)`
    gives for the study's kind (the volume's automatic mid-sagittal slice unless `slice` is
    given, plus `neighbours` slices either side)."""
    if neighbours < 0:
        raise ParameterError("the number of neighbouring slices must be 0 or more.")
    image, index = image_from_study(study, slice)
    kind = image_kind(study)
    size = input_size(kind) if callable(input_size) else int(input_size)
    detail = input_detail_mm(plane_spacing(study), image.shape, size)
    inputs = StudyInputs(image, index, kind, detail)
    if neighbours <= 0 or index is None or study.kind != "volume":
        return inputs
    from sos_core.imaging.reformat import sagittal_count

    count = sagittal_count(study)
    slices = tuple(i for i in range(index - neighbours, index + neighbours + 1) if 0 <= i < count)
    prepared = tuple(prepare_image(image_from_study(study, i)[0], size)[0] for i in slices)
    return dataclasses.replace(inputs, neighbour_slices=slices, neighbour_inputs=prepared)


def image_kind(study: Study) -> str | None:
    """ "slice" for a CT/CBCT (a volume or one CT image), "ceph" for a projection radiograph,
    the DICOM modality code for a file that cannot be either (`NON_HEAD_VIEW_MODALITIES`),
    None when the file does not say (PNG/JPEG/TIFF, secondary capture)."""
    if study.modality in NON_HEAD_VIEW_MODALITIES:
        return study.modality
    if study.kind == "volume":
        return "slice"
    if study.modality == "CT":
        plane = _single_slice_plane(study)
        return f"CT-{plane}" if plane in ("axial", "coronal") else "slice"
    if study.modality in _RADIOGRAPH_MODALITIES:
        return "ceph"
    if len(study.sources) == 1:  # a PNG/TIFF of a dataset (the bundled sample): its manifest
        from sos_core.dataset_manifest import modality_for

        kind = modality_for(Path(study.sources[0]))
        return kind if kind in ("slice", "ceph") else None
    return None


def _single_slice_plane(study: Study) -> str | None:
    """ "sagittal", "coronal" or "axial": the patient axis (x, y, z in LPS) nearest the normal
    of a 2-D image, from its DICOM orientation; None when the file does not say."""
    if study.kind != "image" or not study.direction:
        return None
    normal = [abs(float(row[0])) for row in study.direction]  # column 0: the image normal
    return ("sagittal", "coronal", "axial")[int(np.argmax(normal))]


def plane_spacing(study: Study) -> tuple[float, float] | None:
    """(row, col) mm of the 2-D image the model sees: a volume's sagittal plane is (z, y)."""
    if not study.spacing or len(study.spacing) < 2:
        return None
    if study.kind == "volume" and len(study.spacing) == 3:
        return float(study.spacing[0]), float(study.spacing[1])
    return float(study.spacing[-2]), float(study.spacing[-1])
