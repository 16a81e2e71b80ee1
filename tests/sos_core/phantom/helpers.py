"""Helpers for the phantom tests: subjects in chosen poses and the band's own footprint."""

from __future__ import annotations

import dataclasses

from sos_core.phantom.params import Pose, SubjectParams, draw_subject


def posed(seed: int, stage: int = 0, **pose: float) -> SubjectParams:
    """Subject `seed` at `stage`, with a given pose (pitch/yaw/roll degrees, shift mm)."""
    p = draw_subject(seed, stage=stage)
    shift = (pose.pop("dx", 0.0), pose.pop("dy", 0.0), pose.pop("dz", 0.0))
    return dataclasses.replace(p, pose=Pose(shift_mm=shift, **pose))


def without_band(p: SubjectParams) -> SubjectParams:
    """The same head with the SOS completely fused and no scar: the band paints nothing."""
    sos = dataclasses.replace(p.sos, fusion_fraction=1.0, scar_hu=0.0, islands=0)
    return dataclasses.replace(p, stage=3, sos=sos)


POSES = [
    {},
    {"pitch_deg": 10.0, "dy": 8.0, "dz": -9.0},
    {"pitch_deg": -9.0, "yaw_deg": 4.0, "roll_deg": -4.0, "dx": 2.0},
    {"yaw_deg": -4.0, "roll_deg": 4.0, "dy": -10.0, "dz": 10.0},
]
