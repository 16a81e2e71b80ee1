"""Generate a labelled phantom dataset folder: images, `manifest.jsonl`, `dataset.json`.

Layout: ``slices/<case>.png`` (16-bit, HU + 1024), ``cephs/<case>.png`` (16-bit) and
``cephs/<case>.dcm`` (DX), ``cbct/<case>/`` (a CT series). One manifest row per case and
modality. Each case has its own seed derived from (seed, index) and its split is fixed by
(seed, index), so a case does not depend on the count, the order or the number of workers, and
the same arguments give byte-identical files.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from sos_core import __version__
from sos_core.errors import ParameterError
from sos_core.phantom.params import DISTRIBUTIONS, draw_subject
from sos_core.phantom.stages import STAGE_NAMES

logger = logging.getLogger(__name__)

MODALITIES: tuple[str, ...] = ("slice", "ceph", "cbct")
SPLIT_BLOCK = 20  # splits are 14 / 3 / 3 cases in every block of 20 consecutive indices
_SPLIT_COUNTS = (("train", 14), ("val", 3), ("test", 3))
GENERATOR = "sos-phantom-1"


@dataclass(frozen=True, slots=True)
class DatasetConfig:
    """What to generate. Sizes are pixels (2-D) or voxels per axis (CBCT); spacings mm."""

    count: int
    modalities: tuple[str, ...] = ("slice",)
    seed: int = 0
    size: int = 256
    spacing: float = 0.9
    cbct_size: int = 256
    cbct_spacing: float = 0.9
    distribution: str = "balanced"
    bracket_rate: float = 0.15
    fov_cut_rate: float = 0.3
    workers: int = 1
    start: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise ParameterError on the first unusable setting."""
        if not isinstance(self.count, int) or self.count < 1:
            raise ParameterError("the number of cases must be 1 or more.")
        if not self.modalities or any(m not in MODALITIES for m in self.modalities):
            raise ParameterError(f"modalities must be chosen from {', '.join(MODALITIES)}.")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ParameterError("the seed must be a whole number of 0 or more.")
        if not 16 <= self.size <= 4096 or not 8 <= self.cbct_size <= 1024:
            raise ParameterError("image sizes must be 16 to 4096 pixels (CBCT 8 to 1024 voxels).")
        if not (0.05 <= self.spacing <= 10 and 0.05 <= self.cbct_spacing <= 10):
            raise ParameterError("the pixel spacing must be between 0.05 and 10 mm.")
        if self.distribution not in DISTRIBUTIONS:
            raise ParameterError(
                f"unknown distribution {self.distribution!r}; use balanced or natural."
            )
        if not 1 <= self.workers <= 64:
            raise ParameterError("the number of workers must be 1 to 64.")


def case_seed(seed: int, index: int) -> int:
    """The seed of case `index` in a dataset generated with `seed` (independent of count)."""
    return int(np.random.SeedSequence([int(seed), int(index), 0xCA5E]).generate_state(1)[0])


def split_of(seed: int, index: int) -> str:
    """Fixed split of case `index`: 70/15/15 within every block of 20 indices."""
    perm = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5B17])).permutation(
        SPLIT_BLOCK
    )
    rank = int(perm[index % SPLIT_BLOCK])
    for name, n in _SPLIT_COUNTS:
        if rank < n:
            return name
        rank -= n
    return "test"


def case_id(index: int) -> str:
    return f"case_{index:06d}"


def _r(v: float, nd: int = 4) -> float:
    return float(round(float(v), nd))


def _row(
    cid: str,
    index: int,
    cfg: DatasetConfig,
    subject: Any,
    modality: str,
    file: str,
    box: Sequence[float],
    spacing: Sequence[float],
) -> dict[str, Any]:
    return {
        "case_id": cid,
        "file": file,
        "modality": modality,
        "stage": subject.stage,
        "stage_name": STAGE_NAMES[subject.stage],
        "fusion_fraction": _r(subject.fusion_fraction),
        "sos_box": [_r(v, 2) for v in box],
        "pixel_spacing": [_r(v, 6) for v in spacing],
        "split": split_of(cfg.seed, index),
        "sex": subject.sex,
        "age": _r(subject.age, 2),
        "seed": subject.seed,
        "index": index,
    }


def generate_case(cfg: DatasetConfig, root: Path, index: int) -> list[dict[str, Any]]:
    """Render and write every requested modality of case `index`; its manifest rows."""
    from sos_core.phantom.anatomy import build_head
    from sos_core.phantom.render_ceph import CEPH_TILT_RESIDUAL, render_ceph
    from sos_core.phantom.render_slice import TILT_RESIDUAL, render_slice
    from sos_core.phantom.render_volume import render_volume
    from sos_core.phantom.writers import HU_OFFSET, write_cbct_series, write_ceph_dx, write_png16

    cid = case_id(index)
    subject = draw_subject(
        case_seed(cfg.seed, index),
        distribution=cfg.distribution,  # type: ignore[arg-type]
        bracket_rate=cfg.bracket_rate,
        fov_cut_rate=cfg.fov_cut_rate,
    )
    rows = []
    if "slice" in cfg.modalities:
        img = render_slice(
            subject,
            size=cfg.size,
            spacing=cfg.spacing,
            head=build_head(subject, tilt_residual=TILT_RESIDUAL),
        )
        rel = f"slices/{cid}.png"
        write_png16(img, root / rel)
        row = _row(cid, index, cfg, subject, "slice", rel, img.sos_box, img.pixel_spacing)
        row["hu_offset"] = HU_OFFSET
        row["plane_x_mm"] = _r(img.plane_x_mm or 0.0)
        rows.append(row)
    if "ceph" in cfg.modalities:
        img = render_ceph(
            subject,
            size=cfg.size,
            spacing=cfg.spacing,
            head=build_head(subject, tilt_residual=CEPH_TILT_RESIDUAL),
        )
        rel = f"cephs/{cid}.png"
        write_png16(img, root / rel)
        write_ceph_dx(img, root / f"cephs/{cid}.dcm", cid)
        row = _row(cid, index, cfg, subject, "ceph", rel, img.sos_box, img.pixel_spacing)
        row["magnification"] = _r(img.magnification, 6)
        row["dicom"] = f"cephs/{cid}.dcm"
        rows.append(row)
    if "cbct" in cfg.modalities:
        vol = render_volume(subject, size=cfg.cbct_size, spacing=cfg.cbct_spacing)
        rel = f"cbct/{cid}"
        write_cbct_series(vol, root / rel, cid)
        row = _row(cid, index, cfg, subject, "cbct", rel, vol.sos_box, vol.spacing[:2])
        row["midline_x_mm"] = _r(vol.midline_x_mm)
        row["midline_index"] = vol.midline_index
        row["volume_spacing"] = [_r(v, 6) for v in vol.spacing]
        rows.append(row)
    return rows


def _worker(args: tuple[DatasetConfig, str, list[int]]) -> list[list[dict[str, Any]]]:
    cfg, root, indices = args
    return [generate_case(cfg, Path(root), i) for i in indices]


def _check_out(root: Path, force: bool) -> None:
    if root.exists() and not root.is_dir():
        raise ParameterError(f"{root.name} is a file; choose a folder for the dataset.")
    if root.is_dir() and any(root.iterdir()) and not force:
        raise ParameterError(
            f"{root.name} already holds files; choose an empty folder or pass --force."
        )


def generate_dataset(
    cfg: DatasetConfig,
    out: str | Path,
    *,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Generate `cfg.count` cases into folder `out`; returns the manifest rows.

    progress(done, total) is called after each case (from the calling thread).

    Raises
    ------
    ParameterError
        For a bad setting or an output folder that is a file or already holds files.
    """
    cfg.validate()
    root = Path(out)
    _check_out(root, force)
    root.mkdir(parents=True, exist_ok=True)
    indices = list(range(cfg.start, cfg.start + cfg.count))
    rows: list[dict[str, Any]] = []
    done = 0
    if cfg.workers <= 1:
        for i in indices:
            rows += generate_case(cfg, root, i)
            done += 1
            if progress is not None:
                progress(done, len(indices))
    else:
        chunk = max(1, min(8, len(indices) // (4 * cfg.workers)))
        batches = [(cfg, str(root), indices[k : k + chunk]) for k in range(0, len(indices), chunk)]
        # "spawn" works the same on every platform and never inherits a torch thread pool.
        with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=get_context("spawn")) as pool:
            for result in pool.map(_worker, batches):
                for case_rows in result:
                    rows += case_rows
                    done += 1
                    if progress is not None:
                        progress(done, len(indices))
    _write_text(
        root / "manifest.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    )
    config = {
        k: v for k, v in asdict(cfg).items() if k not in ("workers", "extra")
    }  # no effect on output
    meta = {
        "generator": GENERATOR,
        "version": __version__,
        "config": config,
        "cases": cfg.count,
        "rows": len(rows),
    }
    meta["stage_names"] = list(STAGE_NAMES)
    meta["intensity"] = {
        "slice": "16-bit PNG, value = HU + 1024",
        "ceph": "16-bit PNG, value = detector units (0..1 log attenuation, windowed) * 65535",
        "cbct": "DICOM CT series, int16 HU",
    }
    _write_text(root / "dataset.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")
    logger.info("wrote %d manifest rows for %d cases", len(rows), cfg.count)
    return rows


def _write_text(path: Path, text: str) -> None:
    """Write via a temporary file and a rename, so a reader never sees half a manifest."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
