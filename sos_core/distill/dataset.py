"""Dataset folders (manifest.jsonl + images) read into memory for training and evaluation.

The format is DESIGN.md's: one JSON object per case with at least `file`, `modality`, `stage`,
`sos_box` ([x0, y0, x1, y1] in that image's pixels), `pixel_spacing` and `split`. The phantom
writes it, the review queue exports it, and training reads it here through the same
preprocessing as inference (`sos_core.preprocess`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sos_core.errors import ParameterError
from sos_core.preprocess import Letterbox, image_from_study, normalise_intensity, prepare_image

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass(frozen=True, slots=True)
class CaseRecord:
    """One manifest row. `box` is in the case image's pixels; `path` is absolute."""

    case_id: str
    path: Path
    modality: str
    stage: int
    box: tuple[float, float, float, float]
    split: str
    pixel_spacing: tuple[float, float] | None = None
    extra: dict[str, object] = field(default_factory=dict)


def read_manifest(dataset_dir: str | Path) -> list[CaseRecord]:
    """Parse `manifest.jsonl`; raises ParameterError naming the first bad row."""
    root = Path(dataset_dir)
    manifest = root / "manifest.jsonl"
    if not manifest.is_file():
        raise ParameterError(f"{root.name} is not a dataset folder: it has no manifest.jsonl.")
    cases = []
    for line_no, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            box = tuple(float(v) for v in row["sos_box"])
            spacing = row.get("pixel_spacing")
            cases.append(
                CaseRecord(
                    case_id=str(row.get("case_id", line_no)),
                    path=root / row["file"],
                    modality=str(row["modality"]),
                    stage=int(row["stage"]),
                    box=(box[0], box[1], box[2], box[3]),
                    split=str(row["split"]),
                    pixel_spacing=tuple(spacing) if spacing else None,
                    extra={k: v for k, v in row.items() if k not in _CORE_KEYS},
                )
            )
        except (KeyError, ValueError, TypeError, IndexError, json.JSONDecodeError) as exc:
            raise ParameterError(
                f"line {line_no} of {manifest.name} is not a valid case row; fix or remove it."
            ) from exc
    return cases


_CORE_KEYS = {"case_id", "file", "modality", "stage", "sos_box", "split", "pixel_spacing"}


@dataclass(frozen=True, slots=True)
class LoadedCases:
    """Cases in memory.

    inputs: (N, S, S) float32 student inputs in [0, 1] (letterboxed, the inference input).
    boxes: (N, 4) float32 SOS boxes in student-input pixels.
    labels: (N,) int64 stages.
    natives: per case, the full-resolution image normalised to [0, 1] (float16, for crops).
    native_boxes: (N, 4) float32 boxes in native pixels.
    """

    records: tuple[CaseRecord, ...]
    inputs: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    natives: tuple[np.ndarray, ...]
    native_boxes: np.ndarray
    letterboxes: tuple[Letterbox, ...]

    def __len__(self) -> int:
        return len(self.records)


def load_cases(
    records: Sequence[CaseRecord],
    input_size: int,
    *,
    progress: Callable[[float], None] | None = None,
) -> LoadedCases:
    """Load and preprocess every case exactly as inference will."""
    from sos_core.imaging import open_study

    inputs, boxes, natives, lbs = [], [], [], []
    for i, rec in enumerate(records):
        pixels, _ = image_from_study(open_study(rec.path))
        inp, lb = prepare_image(pixels, input_size)
        inputs.append(inp)
        boxes.append(lb.box_to_input(rec.box))
        natives.append(normalise_intensity(pixels).astype(np.float16))
        lbs.append(lb)
        if progress is not None:
            progress((i + 1) / len(records))
    n = len(records)
    return LoadedCases(
        records=tuple(records),
        inputs=np.stack(inputs) if n else np.zeros((0, input_size, input_size), np.float32),
        boxes=np.asarray(boxes, np.float32).reshape(n, 4),
        labels=np.asarray([r.stage for r in records], np.int64),
        natives=tuple(natives),
        native_boxes=np.asarray([r.box for r in records], np.float32).reshape(n, 4),
        letterboxes=tuple(lbs),
    )


@dataclass(frozen=True, slots=True)
class SizedCases:
    """Cases each loaded at the input size its modality is read at (`ModelCard.input_size_for`):
    one `LoadedCases` per size, and for each group the positions of its cases in the records'
    original order, so that per-case results can be put back in that order (`in_order`)."""

    groups: tuple[LoadedCases, ...]
    positions: tuple[np.ndarray, ...]

    @classmethod
    def single(cls, cases: LoadedCases) -> SizedCases:
        return cls((cases,), (np.arange(len(cases)),))

    def __len__(self) -> int:
        return sum(len(g) for g in self.groups)

    def in_order(self, per_group: Sequence[np.ndarray]) -> np.ndarray:
        """Per-group arrays (first axis: the group's cases) as one array in the original order."""
        first = np.asarray(per_group[0])
        out = np.empty((len(self), *first.shape[1:]), first.dtype)
        for pos, values in zip(self.positions, per_group, strict=True):
            out[pos] = values
        return out

    @property
    def labels(self) -> np.ndarray:
        return self.in_order([g.labels for g in self.groups])


def load_cases_sized(records: Sequence[CaseRecord], size_for: Callable[[str], int]) -> SizedCases:
    """`load_cases` with each record at `size_for(record.modality)`, grouped by size."""
    sizes = [int(size_for(r.modality)) for r in records]
    if not sizes:  # one empty group keeps every consumer's shapes simple
        return SizedCases.single(load_cases([], int(size_for(""))))
    groups, positions = [], []
    for size in sorted(set(sizes)):
        pos = np.array([i for i, s in enumerate(sizes) if s == size], np.int64)
        groups.append(load_cases([records[i] for i in pos], size))
        positions.append(pos)
    return SizedCases(tuple(groups), tuple(positions))


def select(
    records: Sequence[CaseRecord], split: str, modalities: Sequence[str] | None = None
) -> list[CaseRecord]:
    """The records of one split (and optionally some modalities), in manifest order."""
    if split not in SPLITS:
        raise ParameterError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    return [r for r in records if r.split == split and (not modalities or r.modality in modalities)]


def crop_squares(boxes: torch.Tensor, context: float) -> torch.Tensor:
    """The square each teacher crop covers: the box's longer side x `context`, same centre.

    Works in any pixel frame that scales uniformly (native image or letterboxed input), so the
    student's attention is compared with the teacher's over exactly the region it saw.
    """
    import torch

    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    half = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) * context / 2
    return torch.stack([cx - half, cy - half, cx + half, cy + half], dim=1)


def crop_batch(
    natives: Sequence[np.ndarray],
    boxes: np.ndarray,
    size: int,
    *,
    context: float,
    rng: np.random.Generator | None = None,
    jitter: float = 0.0,
) -> np.ndarray:
    """Teacher inputs: (N, size, size) float32 crops around each box.

    With `rng`, each box is shifted by up to `jitter` of its size and scaled by up to
    1 ± `jitter` (training augmentation: the expert's box is never drawn the same way twice).
    """
    from sos_core.preprocess import crop_box

    out = np.empty((len(natives), size, size), np.float32)
    for i, (img, box) in enumerate(zip(natives, boxes, strict=True)):
        x0, y0, x1, y1 = (float(v) for v in box)
        if rng is not None and jitter > 0:
            w, h = x1 - x0, y1 - y0
            dx, dy = rng.uniform(-jitter, jitter, 2) * (w, h)
            s = 1.0 + rng.uniform(-jitter, jitter)
            cx, cy = (x0 + x1) / 2 + dx, (y0 + y1) / 2 + dy
            x0, x1 = cx - w * s / 2, cx + w * s / 2
            y0, y1 = cy - h * s / 2, cy + h * s / 2
        out[i] = crop_box(img.astype(np.float32), (x0, y0, x1, y1), size, context=context)
    return out
