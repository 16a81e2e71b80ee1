"""Export of the current case: a PNG (image, overlay, boxes, footer) and a one-page PDF.

Split as STYLE A.3 asks: the GUI thread captures an immutable `ExportRequest` (cheap copies of
what is on screen), and `write_png` / `write_pdf` run in a worker. Only QImage, QPainter and
QPdfWriter are used, which are safe off the GUI thread and ship with PySide6-Essentials.
The footer always carries the stage, the reviewer and the model version (RG-3); the version is
also written where a program can read it back: a PNG text chunk and the PDF's creator field.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QMarginsF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPageLayout, QPageSize, QPainter, QPdfWriter, QPen

from sos_core.errors import SosError

logger = logging.getLogger(__name__)

Box = tuple[float, float, float, float]
MIN_EXPORT_WIDTH = 640
DISCLAIMER = (
    "Research software: the model was trained on synthetic phantoms; not a clinical device."
)


class ExportFailed(SosError, OSError):
    """The export file could not be written."""


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """Everything an export needs, copied on the GUI thread (arrays are private copies).

    pixels: the displayed 2-D image (rows, cols) in modality units; window: (centre, width).
    cam / lut / opacity: the overlay as shown (None or not shown: no overlay).
    spacing: (row mm, col mm) to restore the true aspect; None for square pixels.
    lines: report lines (case, stage, reviewer, model version ...), shown in order.
    model_version: the version (with weights hash prefix) of the model whose prediction is
        shown, or None when there is none; stored in the file's metadata too (RG-3).
    """

    pixels: np.ndarray
    window: tuple[float, float]
    spacing: tuple[float, float] | None
    cam: np.ndarray | None
    lut: np.ndarray | None
    opacity: float
    suggested_box: Box | None
    crop_box: Box | None
    title: str
    lines: tuple[str, ...]
    model_version: str | None = None


MODEL_KEY = "Model version"  # PNG text-chunk key


def model_metadata(req: ExportRequest) -> str:
    """The model version as written into the files' metadata ("none" without a prediction)."""
    return req.model_version or "none"


def compose_rgb(req: ExportRequest) -> tuple[np.ndarray, float, float]:
    """The image as shown: windowed grey + overlay, as uint8 RGB at true aspect.

    Returns the RGB array and the x / y scale from image pixels to output pixels.
    """
    centre, width = req.window
    lo = centre - width / 2.0
    grey = np.clip((req.pixels.astype(np.float32) - lo) / max(width, 1e-6), 0.0, 1.0)
    rgb = np.repeat((grey * 255.0)[..., None], 3, axis=2)
    if req.cam is not None and req.lut is not None and req.cam.shape == req.pixels.shape:
        idx = np.clip(req.cam * 255.0, 0, 255).astype(np.intp)
        colours = req.lut[idx].astype(np.float32)
        alpha = colours[..., 3:4] / 255.0 * req.opacity
        rgb = rgb * (1.0 - alpha) + colours[..., :3] * alpha
    out = np.ascontiguousarray(np.clip(rgb, 0, 255).astype(np.uint8))
    h, w = out.shape[:2]
    sy = 1.0
    if req.spacing is not None:
        row_mm, col_mm = req.spacing
        sy = row_mm / col_mm
    # Small images are enlarged (nearest neighbour: pixels stay honest) so the report is legible.
    k = max(1.0, MIN_EXPORT_WIDTH / w)
    sx, sy = k, sy * k
    if (sx, sy) != (1.0, 1.0):
        size = (max(1, round(w * sx)), max(1, round(h * sy)))
        out = cv2.resize(out, size, interpolation=cv2.INTER_NEAREST)
    return out, sx, sy


def _qimage(rgb: np.ndarray) -> QImage:
    h, w, _ = rgb.shape
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def _draw_boxes(p: QPainter, req: ExportRequest, sx: float, sy: float, k: float = 1.0) -> None:
    for box, colour, style in (
        (req.suggested_box, QColor(0, 255, 255), Qt.PenStyle.DashLine),
        (req.crop_box, QColor(255, 220, 0), Qt.PenStyle.SolidLine),
    ):
        if box is None:
            continue
        pen = QPen(colour, max(1.0, 2.0 * k), style)
        p.setPen(pen)
        p.setBrush(Qt.BrushStyle.NoBrush)
        x0, y0, x1, y1 = box
        p.drawRect(QRectF(x0 * sx * k, y0 * sy * k, (x1 - x0) * sx * k, (y1 - y0) * sy * k))


def render_png_image(req: ExportRequest) -> QImage:
    """Image + overlay + boxes, with a footer band holding the title and report lines."""
    rgb, sx, sy = compose_rgb(req)
    h, w, _ = rgb.shape
    font = QFont("DejaVu Sans")
    font.setPixelSize(max(12, min(20, w // 45)))
    line_h = int(font.pixelSize() * 1.5)
    lines = (req.title, *req.lines, DISCLAIMER)
    width = max(w, 640)
    out = QImage(width, h + line_h * len(lines) + line_h // 2, QImage.Format.Format_RGB888)
    out.fill(QColor(20, 20, 20))
    p = QPainter(out)
    try:
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.drawImage((width - w) // 2, 0, _qimage(rgb))
        p.translate((width - w) // 2, 0)
        _draw_boxes(p, req, sx, sy)
        p.resetTransform()
        p.setFont(font)
        p.setPen(QColor(235, 235, 235))
        for i, text in enumerate(lines):
            rect = QRectF(8, h + line_h // 4 + i * line_h, width - 16, line_h)
            flags = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
            p.drawText(rect, int(flags), text)
    finally:
        p.end()
    return out


def write_png(req: ExportRequest, path: Path) -> Path:
    """Write the PNG export; raises `ExportFailed` if the file cannot be written."""
    image = render_png_image(req)
    image.setText(MODEL_KEY, model_metadata(req))
    image.setText("Software", "SOS Review")
    if not image.save(str(path), "PNG"):
        raise ExportFailed(f"{path.name} could not be written; check the folder and free space.")
    logger.info("PNG export written")
    return path


def write_pdf(req: ExportRequest, path: Path) -> Path:
    """Write a one-page A4 PDF report: title, image with overlay and boxes, report lines."""
    writer = QPdfWriter(str(path))
    writer.setResolution(150)
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    writer.setPageMargins(QMarginsF(15, 15, 15, 15), QPageLayout.Unit.Millimeter)
    writer.setTitle(req.title)
    writer.setCreator(f"SOS Review; {MODEL_KEY.lower()} {model_metadata(req)}")
    p = QPainter()
    if not p.begin(writer):
        raise ExportFailed(f"{path.name} could not be written; check the folder and free space.")
    try:
        page = writer.pageLayout().paintRectPixels(writer.resolution())
        pw, ph = page.width(), page.height()
        title_font = QFont("DejaVu Sans", 16, QFont.Weight.Bold)
        body_font = QFont("DejaVu Sans", 10)
        p.setFont(title_font)
        p.drawText(QRectF(0, 0, pw, 80), int(Qt.AlignmentFlag.AlignLeft), req.title)
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        p.setFont(body_font)
        p.drawText(QRectF(0, 70, pw, 40), int(Qt.AlignmentFlag.AlignLeft), f"Exported {stamp}")
        rgb, sx, sy = compose_rgb(req)
        ih, iw, _ = rgb.shape
        text_h = 30 * (len(req.lines) + 3)
        k = min(pw / iw, (ph - 140 - text_h) / ih)
        top = 130
        target = QRectF((pw - iw * k) / 2, top, iw * k, ih * k)
        p.drawImage(target, _qimage(rgb))
        p.save()
        p.translate(target.left(), target.top())
        _draw_boxes(p, req, sx, sy, k)
        p.restore()
        y = top + ih * k + 30
        p.setPen(QColor(0, 0, 0))
        for text in req.lines:
            p.drawText(QRectF(0, y, pw, 30), int(Qt.AlignmentFlag.AlignLeft), text)
            y += 30
        p.setPen(QColor(110, 110, 110))
        p.drawText(QRectF(0, ph - 40, pw, 40), int(Qt.AlignmentFlag.AlignLeft), DISCLAIMER)
    finally:
        p.end()
    if not path.is_file() or path.stat().st_size == 0:
        raise ExportFailed(f"{path.name} could not be written; check the folder and free space.")
    logger.info("PDF export written")
    return path


__all__ = [
    "DISCLAIMER",
    "MODEL_KEY",
    "ExportFailed",
    "ExportRequest",
    "compose_rgb",
    "render_png_image",
    "write_pdf",
    "write_png",
]
