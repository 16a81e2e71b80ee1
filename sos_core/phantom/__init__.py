"""Synthetic cranial-base phantom: parametric heads rendered as CBCT volumes, mid-sagittal
slices and lateral cephalograms, with the SOS stage, fusion fraction and box known exactly.

Typical use::

    from sos_core.phantom import draw_subject, render_slice
    image = render_slice(draw_subject(seed=7, stage=2))
    image.image, image.sos_box, image.stage

No torch here (the hardness check imports it lazily).
"""

from __future__ import annotations

from sos_core.phantom.anatomy import Head, build_head
from sos_core.phantom.dataset import DatasetConfig, case_seed, generate_dataset, split_of
from sos_core.phantom.params import Acquisition, Pose, SosParams, SubjectParams, draw_subject
from sos_core.phantom.preview import contact_sheet
from sos_core.phantom.records import PhantomImage, PhantomVolume
from sos_core.phantom.render_ceph import render_ceph
from sos_core.phantom.render_slice import render_slice
from sos_core.phantom.render_volume import render_volume
from sos_core.phantom.stages import STAGE_NAMES, check_consistent, stage_of_fraction
from sos_core.phantom.writers import HU_OFFSET, write_cbct_series, write_ceph_dx, write_png16

__all__ = [
    "HU_OFFSET",
    "STAGE_NAMES",
    "Acquisition",
    "DatasetConfig",
    "Head",
    "PhantomImage",
    "PhantomVolume",
    "Pose",
    "SosParams",
    "SubjectParams",
    "build_head",
    "case_seed",
    "check_consistent",
    "contact_sheet",
    "draw_subject",
    "generate_dataset",
    "render_ceph",
    "render_slice",
    "render_volume",
    "split_of",
    "stage_of_fraction",
    "write_cbct_series",
    "write_ceph_dx",
    "write_png16",
]
