"""Evaluation of a teacher or student on a dataset split: metrics, pointing game, reports.

Teachers are scored on crops of the true SOS box (the expert-crop setting); students on the
full images, exactly as inference feeds them. Reports are JSON + Markdown + a confusion PNG.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sos_core.device import prepare_for_scoring
from sos_core.distill.dataset import (
    LoadedCases,
    SizedCases,
    crop_batch,
    load_cases,
    load_cases_sized,
    read_manifest,
    select,
)
from sos_core.distill.metrics import classification_report, fit_temperature, nll, pointing_hits
from sos_core.explain.grad_cam import GradCam
from sos_core.inference.zoom import ZoomSpec, combine, second_look
from sos_core.models.model_file import load_model

if TYPE_CHECKING:
    from torch import nn

    from sos_core.distill.config import TrainConfig
    from sos_core.models.card import ModelCard

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ModelOutputs:
    """Raw outputs on a set of cases: logits (N x C) and, per case, whether the Grad-CAM of
    the predicted stage peaks inside the true SOS box (the pointing game's hit)."""

    logits: np.ndarray
    hits: np.ndarray


def model_inputs(
    cases: LoadedCases, *, crop: bool, crop_size: int, crop_context: float
) -> tuple[torch.Tensor, np.ndarray]:
    """The model's inputs for `cases` and the true boxes in input pixels."""
    if not crop:
        return torch.from_numpy(cases.inputs).unsqueeze(1), cases.boxes
    crops = crop_batch(cases.natives, cases.native_boxes, crop_size, context=crop_context)
    # In a crop the box sits centred, its longer side spanning 1/context of the crop.
    boxes = []
    for x0, y0, x1, y1 in cases.native_boxes:
        s = crop_size / (max(x1 - x0, y1 - y0) * crop_context)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        boxes.append(
            [
                crop_size / 2 + (x0 - cx) * s,
                crop_size / 2 + (y0 - cy) * s,
                crop_size / 2 + (x1 - cx) * s,
                crop_size / 2 + (y1 - cy) * s,
            ]
        )
    return torch.from_numpy(crops).unsqueeze(1), np.asarray(boxes, np.float32).reshape(-1, 4)


def run_model(
    model: nn.Module, x: torch.Tensor, zoom: ZoomSpec | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and predicted-class Grad-CAM maps (input resolution) for every input.

    With `zoom` the logits are both readings' combined ones (what inference reports) and the
    maps are the full images' for the full reading's stage (what the second look centres on).
    """
    batch = prepare_for_scoring(model)
    cam = GradCam(model)
    logits, maps = [], []
    for i in range(0, len(x), batch):
        xb = x[i : i + batch]
        r = cam(xb)
        out = r.logits.float()
        if zoom is not None:
            out = combine(out, second_look(model, xb, r.cam, zoom), zoom.mix)
        logits.append(out.cpu().numpy())
        maps.append(r.cam.cpu().numpy())
    return np.concatenate(logits), np.concatenate(maps)


def model_outputs(
    model: nn.Module,
    cases: LoadedCases | SizedCases,
    *,
    crop: bool,
    crop_size: int,
    crop_context: float,
    zoom: ZoomSpec | None = None,
) -> ModelOutputs:
    """`run_model` over every case (each group of a `SizedCases` at its own input size), in
    the cases' order."""
    sized = cases if isinstance(cases, SizedCases) else SizedCases.single(cases)
    logits, hits = [], []
    for group in sized.groups:
        x, boxes = model_inputs(group, crop=crop, crop_size=crop_size, crop_context=crop_context)
        group_logits, cams = run_model(model, x, zoom)
        logits.append(group_logits)
        hits.append(pointing_hits(cams, boxes))
    return ModelOutputs(sized.in_order(logits), sized.in_order(hits))


def score(
    outputs: ModelOutputs, labels: np.ndarray, temperature: float, num_classes: int
) -> dict[str, Any]:
    """Every metric of one evaluation at a given calibration temperature."""
    z = outputs.logits / temperature
    probs = np.exp(z - z.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    report = classification_report(labels, probs, num_classes)
    report["nll"] = nll(outputs.logits, labels, temperature)
    report["pointing_game"] = float(outputs.hits.mean())
    return report


def evaluate_loaded(
    model: nn.Module,
    config: TrainConfig,
    cases: LoadedCases | SizedCases,
    *,
    temperature: float | None,
    fit_temperature: bool = False,
    zoom: ZoomSpec | None = None,
) -> dict[str, Any]:
    """Score a freshly trained model on loaded cases, optionally fitting its temperature."""
    outputs = model_outputs(
        model,
        cases,
        crop=config.kind == "teacher",
        crop_size=config.crop_size,
        crop_context=config.crop_context,
        zoom=zoom,
    )
    t = _fit(outputs.logits, cases.labels) if fit_temperature else (temperature or 1.0)
    num_classes = outputs.logits.shape[1]
    return {
        "temperature": t,
        "metrics": score(outputs, cases.labels, t, num_classes),
        "uncalibrated": score(outputs, cases.labels, 1.0, num_classes),
    }


def _fit(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(fit_temperature(logits, labels))


def evaluate_model_dir(
    model_dir: str | Path,
    dataset: str | Path,
    *,
    split: str = "test",
    modalities: tuple[str, ...] | None = None,
) -> tuple[dict[str, Any], ModelCard]:
    """Load a model folder and score it on a dataset split with its stored temperature."""
    model, card = load_model(model_dir)
    mods = modalities or card.modalities or None
    records = select(read_manifest(dataset), split, mods)
    if not records:
        from sos_core.errors import ParameterError

        raise ParameterError(f"the dataset has no {split} cases for this model's modalities.")
    crop = card.preprocessing.get("input") == "crop"
    # A teacher crops the native images, so their input size does not matter.
    cases = load_cases(records, 256) if crop else load_cases_sized(records, card.input_size_for)
    outputs = model_outputs(
        model,
        cases,
        crop=crop,
        crop_size=card.input_size[0],
        crop_context=float(card.preprocessing.get("crop_context", 1.5)),
        zoom=ZoomSpec.from_preprocessing(card.preprocessing),
    )
    metrics = score(outputs, cases.labels, card.temperature, len(card.stage_names))
    report = {
        "model": card.version,
        "architecture": card.architecture,
        "dataset": Path(dataset).name,
        "split": split,
        "modalities": list(mods or []),
        "input": "crop" if crop else "full",
        "temperature": card.temperature,
        "stage_names": list(card.stage_names),
        "metrics": metrics,
    }
    return report, card


def write_report(report: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """report.json, report.md and confusion.png in `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    (out / "report.md").write_text(report_markdown(report), encoding="utf-8")
    confusion_png(
        np.asarray(report["metrics"]["confusion_matrix"]),
        report["stage_names"],
        out / "confusion.png",
    )
    return [out / "report.json", out / "report.md", out / "confusion.png"]


def report_markdown(report: dict[str, Any]) -> str:
    m = report["metrics"]
    names = report["stage_names"]
    lines = [
        f"# Evaluation of {report['model']} on {report['dataset']} ({report['split']})",
        "",
        f"Input: {report['input']} images; cases: {m['n']}; calibration temperature "
        f"{report['temperature']:.3f}.",
        "",
        "| metric | value |",
        "| --- | --- |",
    ]
    for key in (
        "accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "precision_weighted",
        "recall_weighted",
        "f1_weighted",
        "kappa_quadratic",
        "ece",
        "nll",
        "pointing_game",
    ):
        lines.append(f"| {key} | {m[key]:.4f} |")
    lines += [
        "",
        "Confusion matrix (rows: true stage, columns: predicted):",
        "",
        "| true \\ predicted | " + " | ".join(names) + " |",
        "| --- |" + " --- |" * len(names),
    ]
    for name, row in zip(names, m["confusion_matrix"], strict=True):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def confusion_png(matrix: np.ndarray, names: list[str], path: Path) -> None:
    """A labelled confusion-matrix heat map (OpenCV; no plotting library needed)."""
    import cv2

    n, cell, left, top = len(names), 90, 170, 60
    img = np.full((top + n * cell + 40, left + n * cell + 20, 3), 255, np.uint8)
    peak = max(1, int(matrix.max()))
    for i in range(n):
        for j in range(n):
            v = int(matrix[i, j])
            shade = int(255 - 200 * v / peak)
            x0, y0 = left + j * cell, top + i * cell
            cv2.rectangle(img, (x0, y0), (x0 + cell - 2, y0 + cell - 2), (255, shade, shade), -1)
            colour = (255, 255, 255) if shade < 130 else (0, 0, 0)
            cv2.putText(img, str(v), (x0 + 30, y0 + 52), cv2.FONT_HERSHEY_SIMPLEX, 0.8, colour, 2)
        cv2.putText(
            img,
            names[i][:18],
            (5, top + i * cell + 50),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (0, 0, 0),
            1,
        )
        cv2.putText(
            img,
            str(i),
            (left + i * cell + 38, top - 15),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.6,
            (0, 0, 0),
            1,
        )
    cv2.putText(
        img,
        "rows: true stage, columns: predicted",
        (5, img.shape[0] - 12),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.45,
        (0, 0, 0),
        1,
    )
    cv2.imwrite(str(path), img)
