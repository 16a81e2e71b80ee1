"""The parametric head: a few hundred analytic solids in a head frame, posed in the scanner.

Head frame: mm, LPS axes (+x left, +y posterior, +z superior), origin at the centre of the sella
turcica; the reference is an adult. Each region grows with its own scale (cranium about the
sella, face about the anterior cranial base, neck about the basion). The list order is the
painting order: soft tissue, bone, then air and the solids that carve into others. A bone made
of several solids paints all cortices first and all marrows after, so the union is seamless.
Parts that do not depend on the subject are built once and cached.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass

import numpy as np

from sos_core.phantom import dentition, spine
from sos_core.phantom.materials import (
    AIR,
    AIR_CELLS,
    BONE_THRESHOLD,
    BRAIN,
    CORTEX,
    DENSE,
    DIPLOE,
    FAT,
    MARROW,
    SOFT,
)
from sos_core.phantom.params import SubjectParams, subject_rng
from sos_core.phantom.shapes import Shape, ShapeSet, frame, rotation, shape
from sos_core.phantom.sos_band import SosBand, make_band

logger = logging.getLogger(__name__)

HEAD_PIVOT = np.array([0.0, 8.0, -8.0])  # rotation centre of the pose; lands at the shift
FACE_PIVOT = np.array([0.0, -40.0, 0.0])
SN_ANGLE_DEG = 173.0  # direction sella -> nasion in the (y, z) plane, 7 degrees above -y
BASION_DISTANCE_MM = 45.0
SEPTUM = 300.0  # thin bone and cartilage, partly averaged with air at this resolution
_SOFT_ONLY = {"mode": "replace_below", "threshold": BONE_THRESHOLD}


@dataclass(frozen=True, slots=True, eq=False)
class Head:
    """The posed head: solids in patient coordinates (mm, LPS) in painting order, and the SOS.

    midline_x_mm: x of the head's mid-sagittal plane at the pose pivot.
    pose_rot / pose_shift: patient = pose_rot @ (head - HEAD_PIVOT) + pose_shift.
    landmarks: sella, nasion, basion in patient coordinates.
    """

    shapes: ShapeSet
    band: SosBand
    midline_x_mm: float
    pose_rot: np.ndarray
    pose_shift: np.ndarray
    landmarks: dict[str, np.ndarray]


def bone(
    name: str,
    center: np.ndarray | list[float],
    radii: list[float] | tuple[float, ...],
    rot: np.ndarray | None = None,
    cortex: float = 1.3,
    marrow: float = MARROW,
    **kw: object,
) -> tuple[Shape, Shape]:
    """A bone: (cortical solid, marrow solid `cortex` mm inside it)."""
    inner = [max(0.3, r - cortex) for r in radii]
    return (
        shape(name, center, radii, CORTEX, rot=rot, **kw),
        shape(name + " marrow", center, inner, marrow, rot=rot, **kw),
    )


def union(parts: list[tuple[Shape, Shape]]) -> list[Shape]:
    """Cortices of all parts, then their marrows: one seamless bone."""
    return [c for c, _ in parts] + [m for _, m in parts]


def pair(
    name: str, center: list[float], radii: list[float], value: float, **kw: object
) -> list[Shape]:
    """Left and right copies of a lateral solid (center given for the left, +x, side)."""
    out = []
    for side in (1.0, -1.0):
        kw2 = dict(kw)
        if kw.get("rot") is not None:
            mirror = np.diag([side, 1.0, 1.0])
            kw2["rot"] = mirror @ np.asarray(kw["rot"]) @ mirror
        c = [side * center[0], center[1], center[2]]
        out.append(shape(f"{name} {'L' if side > 0 else 'R'}", c, radii, value, **kw2))
    return out


def clivus_axes(angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit clivus direction (sella -> basion) and its ectocranial normal, head frame."""
    phi = math.radians(SN_ANGLE_DEG + angle_deg)
    d = np.array([0.0, math.cos(phi), math.sin(phi)])
    n_ecto = np.array([0.0, d[2], -d[1]])  # d x (1, 0, 0): already a unit vector
    return d, n_ecto


@functools.lru_cache(maxsize=1)
def _soft_tissue() -> tuple[ShapeSet, ShapeSet, ShapeSet]:
    """Skin envelope split by growth region: (cranium, face, neck)."""
    cran = [
        shape("scalp", [0, 19, 25], [78, 102, 92], SOFT),
        *pair("ear", [76, 20, -15], [5, 16, 28], SOFT),
    ]
    face = [
        shape("face", [0, -38, -40], [60, 42, 48], SOFT, power=4),
        shape("cheeks", [0, -30, -45], [66, 40, 40], SOFT),
        shape("nose", [0, -89, -16], [12, 12, 22], SOFT, rot=rotation("x", 32), taper=0.55),
        shape("upper lip", [0, -82, -61], [24, 7, 10], SOFT),
        shape("lower lip", [0, -80, -79], [22, 7, 8], SOFT),
        shape("chin", [0, -75, -100], [24, 11, 13], SOFT),
        shape("submental", [0, -45, -106], [42, 35, 18], SOFT),
    ]
    neck = [shape("neck", [0, 18, -125], [55, 52, 80], SOFT, power_z=8)]
    return ShapeSet.of(cran), ShapeSet.of(face), ShapeSet.of(neck)


def _vault(p: SubjectParams, rng: np.random.Generator) -> list[Shape]:
    """Vault tables, diploe and brain, glabella and frontal sinus; open at the cranial base."""
    t = p.vault_thickness_mm
    c = np.array([0.0, 19.0 + rng.normal(0, 1.5), 25.0])
    ro = np.array([72.0, 96.0, 86.0]) * np.exp(rng.normal(0, 0.02, 3))
    out = list(bone("glabella", [0, -79, 12], [22, 6.5, 13], cortex=1.6, marrow=DIPLOE))
    for name, inset, value in (
        ("outer table", 0.0, CORTEX),
        ("diploe", 0.28 * t, DIPLOE),
        ("inner table", 0.7 * t, CORTEX),
        ("brain", t, BRAIN),
    ):
        r = ro - inset
        # Keep z >= -25 - 0.3625 y (anterior cranial base) and z >= -44 (below the occiput the
        # vault curves forward to the opisthion), in the shape's normalised local units.
        clips = (
            (0.0, -0.3625 * r[1], -r[2], 25.0 + 0.3625 * c[1] + c[2]),
            (0.0, 0.0, -r[2], 44.0 + c[2]),
        )
        out.append(shape(name, c, r, value, clips=clips))
    fs = p.frontal_sinus
    if fs > 0.35:  # a small or absent frontal sinus is common
        fc = [0.0, -76.0, 14.0 + 2 * fs]
        fr = np.array([12.0, 3.3, 9.0]) * fs
        out.append(shape("frontal sinus wall", fc, fr + 0.8, CORTEX))
        out.append(shape("frontal sinus", fc, fr, AIR))
    return out


@functools.lru_cache(maxsize=1)
def _base_static() -> ShapeSet:
    """Parts of the cranial base that do not vary: fossa floors, petrous bones, mastoids."""
    out = union(
        [
            bone(
                "anterior fossa floor",
                [0, -42, 2.5],
                [14, 34, 1.6],
                rot=rotation("x", -5),
                power=4,
                cortex=0.7,
            )
        ]
    )
    out.append(shape("crista galli", [0, -58, 5], [1.0, 4, 4.5], CORTEX, rot=rotation("x", -25)))
    # Fossa floors are curved: thin shell caps rather than flat plates, which a lateral
    # projection would show edge-on as bright bars across the clivus.
    out += pair(
        "orbital roof", [30, -50, -8], [15, 22, 15.5], CORTEX, clips=((0.0, 0.0, -1.0, -0.55),)
    )
    out += pair(
        "orbital roof inside",
        [30, -50, -8],
        [14, 21, 14.3],
        BRAIN,
        clips=((0.0, 0.0, -1.0, -0.55),),
    )
    for side in (1.0, -1.0):
        apex, base = np.array([side * 13, 14, -25]), np.array([side * 46, 31, -27])
        rot = frame(base - apex, (0.0, 0.0, 1.0))
        half = float(np.linalg.norm(base - apex) / 2)
        out.append(
            Shape(
                f"petrous {side:+.0f}", (apex + base) / 2, rot, (5.0, 7.0, half), DENSE, taper=0.5
            )
        )
        out.append(shape(f"mastoid {side:+.0f}", [side * 47, 33, -34], [10, 12, 14], AIR_CELLS))
        out.append(shape(f"ear canal {side:+.0f}", [side * 62, 18, -20], [10, 4, 4], AIR))
    return ShapeSet.of(out)


def _cranial_base(p: SubjectParams, rng: np.random.Generator, band: SosBand) -> list[Shape]:
    """Sphenoid with sinus and sella, clivus, foramen magnum, occipital condyles."""
    d, _ = clivus_axes(p.cranial_base_angle_deg)
    ba = BASION_DISTANCE_MM * d
    normal, point = band.clip_anterior(margin_mm=0.6)
    floor = band.ectocranial_point()
    body = bone("sphenoid body", [0, -7, -9.5], [14, 15, 12], power=4)
    body = tuple(
        b.with_world_clip(normal, point).with_world_clip(
            np.array([0.0, 0.0, -1.0]), floor + [0, 0, -0.3]
        )
        for b in body
    )
    clivus = bone("clivus", band.center, band.radii, rot=band.rot, cortex=1.3)
    out = union([body, clivus])  # type: ignore[list-item]
    ss = p.sphenoid_sinus
    sc = np.array([0.0, -12.0, -10.0])
    sr = np.array([11.0, 9.5, 8.0]) * ss
    out.append(shape("sphenoid sinus wall", sc, sr + 1.0, CORTEX, power=4))
    out.append(shape("sphenoid sinus", sc, sr, AIR, power=4))
    septum_x = float(rng.choice([-1.0, 1.0]) * rng.uniform(1.5, 4.0))  # usually off the midline
    out.append(
        shape(
            "sinus septum",
            sc + [septum_x, 0, 0],
            [0.5, sr[1], sr[2]],
            CORTEX,
            mode="replace_below",
            threshold=-500,
        )
    )
    out.append(shape("sella floor", [0, 0, 0], [6.9, 6.9, 6.9], CORTEX, clips=((0, 0, 1, 0.15),)))
    out.append(
        shape("dorsum sellae", [0, 7.6, 1.5], [6.5, 2.0, 8.0], CORTEX, rot=rotation("x", 12))
    )
    out += pair("anterior clinoid", [9, -6.5, 3.5], [4, 6, 2], CORTEX)
    out += pair("posterior clinoid", [4, 6.0, 9.0], [3, 2, 2], CORTEX)
    out.append(shape("pituitary", [0, 0, 0.3], [5.6, 5.6, 5.6], BRAIN + 10))
    fm = [0.0, ba[1] + 17.5, ba[2] + 0.5]
    out.append(
        shape(
            "foramen magnum",
            fm,
            [14, 17.5, 9],
            BRAIN,
            power_z=4,
            mode="replace_above",
            threshold=BONE_THRESHOLD,
        )
    )
    out += pair("occipital condyle", [13, ba[1] + 10, ba[2] - 4], [6, 10, 5], CORTEX)
    return out


@functools.lru_cache(maxsize=1)
def _midface_static() -> ShapeSet:
    """Orbits, eyes, zygoma, pterygoid plates, turbinates, ethmoid cells, nasal bones."""
    # Orbital walls: the posterior two thirds of a shell; the orbit opens to the front.
    out = pair(
        "orbit wall", [33, -52, -4], [19.0, 23.0, 18.0], CORTEX, clips=((0.0, -1.0, 0.0, 0.35),)
    )
    out += pair("orbit", [33, -52, -4], [18, 22, 17], FAT + 60)
    out += pair("zygoma", [48, -46, -25], [7, 12, 10], CORTEX)
    out += pair("zygomatic arch", [56, -18, -22], [3, 22, 3.5], CORTEX)
    out += pair("pterygoid plate", [12, -18, -31], [2, 5, 12], CORTEX)
    out += pair("ethmoid cells", [11, -48, -6], [8, 18, 7], -500.0)
    out.append(shape("nasal bone", [0, -81, -2], [7, 1.6, 11.5], CORTEX, rot=rotation("x", 28)))
    return ShapeSet.of(out)


def _midface(p: SubjectParams, rng: np.random.Generator) -> list[Shape]:
    """Maxillary sinuses, nasal cavity and septum, palate."""
    ms = rng.uniform(0.85, 1.1)
    out = pair(
        "maxillary wall", [23, -44, -28], [15 * ms + 1.3, 18 * ms + 1.3, 16 * ms + 1.3], CORTEX
    )
    out += pair("maxillary sinus", [23, -44, -28], [15 * ms, 18 * ms, 16 * ms], AIR)
    out.append(
        shape(
            "nasal cavity",
            [0, -45, -27],
            [16, 26, 17],
            AIR,
            power=4,
            clips=((0.0, -0.6, 1.0, 1.0),),
        )
    )
    out += pair("inferior turbinate", [12, -45, -33], [4, 22, 4.5], SOFT)
    out += pair("middle turbinate", [11, -45, -20], [3.5, 18, 4], SOFT)
    # The septum is rarely straight: upper and lower parts deviate, so a midline slice shows
    # septum in places and nasal air in others.
    for name, clip in (("upper", (0.0, 0.0, -1.0, 0.0)), ("lower", (0.0, 0.0, 1.0, 0.0))):
        dev = rng.uniform(-1.8, 1.8)
        out.append(
            shape(
                f"{name} nasal septum",
                [dev, -46, -23],
                [1.2, 26, 19],
                SEPTUM,
                power=4,
                mode="replace_below",
                threshold=-300,
                clips=(clip,),
            )
        )
    out.append(shape("anterior nasal spine", [0, -71, -43], [3, 6, 1.8], CORTEX))
    return out


def _airway(p: SubjectParams, rng: np.random.Generator) -> list[Shape]:
    """Pharyngeal airway, then tongue, soft palate and adenoid (which never replace bone)."""
    aw, ad = p.airway, p.adenoid
    return [
        shape("nasopharynx", [0, -8, -36], [13, 11 * aw, 8], AIR, rot=rotation("x", -40)),
        shape("oropharynx", [0, 5, -78], [14, 5 * aw + 1.5, 26], AIR, rot=rotation("x", 8)),
        shape("hypopharynx", [0, 9, -108], [13, 6 * aw, 12], AIR),
        shape("tongue", [0, -37, -73], [26, 30, 16], SOFT + 5, **_SOFT_ONLY),
        shape("oral air", [0, -42, -57.5], [16, 20, 1.5 + 1.5 * rng.random()], AIR, **_SOFT_ONLY),
        Shape(
            "soft palate",
            np.array([0.0, -8.4, -57.8]),
            frame([0.0, 0.6, -0.8]),
            (15.0, 4.5, 16.0),
            SOFT,
            mode="replace_below",
            threshold=BONE_THRESHOLD,
        ),
        shape("adenoid", [0, 1, -29], [14, 7 * ad + 1, 6 * ad + 1], SOFT, **_SOFT_ONLY),
    ]


def build_head(p: SubjectParams, *, tilt_residual: float = 1.0) -> Head:
    """The posed head of subject `p` (shapes in patient coordinates, painting order).

    tilt_residual scales the yaw and roll of the pose: a reformatted mid-sagittal slice is
    aligned with the head up to a small residual (the slice renderer uses 0.3).
    """
    rng = subject_rng(p.seed, 1)
    d, n_ecto = clivus_axes(p.cranial_base_angle_deg)
    band = make_band(p, d, n_ecto, rng)
    ba = BASION_DISTANCE_MM * d
    cran_soft, face_soft, neck_soft = _soft_tissue()
    S = ShapeSet.of
    cran = ShapeSet.concat([S(_vault(p, rng)), _base_static(), S(_cranial_base(p, rng, band))])
    face = ShapeSet.concat(
        [
            _midface_static(),
            S(_midface(p, rng)),
            dentition.jaws(p, subject_rng(p.seed, 11)),
            S(_airway(p, rng)),
        ]
    )
    neck = spine.vertebrae(p, subject_rng(p.seed, 12), ba)
    sc, sf, sn = p.scale_cranium, p.scale_face, p.scale_neck
    zero = np.zeros(3)
    ba_s = ba * sc
    ordered = ShapeSet.concat(
        [
            cran_soft.scaled(sc, zero),
            face_soft.scaled(sf, FACE_PIVOT),
            neck_soft.scaled(sn, ba, ba_s),
            cran.scaled(sc, zero),
            face.scaled(sf, FACE_PIVOT),
            neck.scaled(sn, ba, ba_s),
        ]
    )
    pose = p.pose
    k = float(tilt_residual)
    r = (
        rotation("z", pose.yaw_deg * k)
        @ rotation("y", pose.roll_deg * k)
        @ rotation("x", pose.pitch_deg)
    )
    shift = np.asarray(pose.shift_mm, dtype=np.float64)
    t = shift - r @ HEAD_PIVOT
    sn_dir = np.array([0.0, -math.cos(math.radians(7.0)), math.sin(math.radians(7.0))])
    marks = {"sella": zero, "basion": ba_s, "nasion": sc * 75.0 * sn_dir}
    landmarks = {name: r @ v + t for name, v in marks.items()}
    return Head(
        ordered.moved(r, t), band.scaled(sc).moved(r, t), float(shift[0]), r, shift, landmarks
    )
