"""Small graphics pieces of the image viewer: its ViewBox, slice slider, mm scale bar, LUTs."""

from __future__ import annotations

import logging
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPolygonF
from PySide6.QtWidgets import QSlider, QStyle, QStyleOptionSlider, QWidget

logger = logging.getLogger(__name__)

_NICE_MM = (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500)
MARKER_COLOUR = QColor(255, 160, 40)

# Common CT display windows as (centre, width) in HU.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "bone": (500.0, 2000.0),
    "soft tissue": (40.0, 400.0),
}


def overlay_lut(name: str) -> np.ndarray:
    """A 256x4 RGBA uint8 LUT: the colour map, with alpha rising so weak attention fades out."""
    cmap = pg.colormap.get(name)
    lut = cmap.getLookupTable(0.0, 1.0, 256, alpha=True).astype(np.uint8)
    lut[:, 3] = (np.clip(np.linspace(0.0, 2.0, 256), 0.0, 1.0) * 255).astype(np.uint8)
    return lut


def auto_window(pixels: np.ndarray) -> tuple[float, float]:
    """(centre, width) spanning the 0.5th to 99.5th percentile, as the model sees intensity."""
    lo, hi = np.percentile(pixels, (0.5, 99.5))
    width = float(hi - lo) if hi > lo else 1.0
    return float(lo) + width / 2.0, width


class ImageViewBox(pg.ViewBox):
    """ViewBox with right-drag window/level, box drawing and (for volumes) wheel slice scrolling.

    Left-drag pans and Ctrl+wheel zooms, as in pyqtgraph; a plain wheel zooms 2-D images.
    Shift+left-drag, or any left-drag while `draw_box` is on, draws a box instead:
    `box_dragged(start, end, finished)` in view (image pixel) coordinates.
    """

    window_dragged = Signal(float, float)
    slice_scrolled = Signal(int)
    box_dragged = Signal(QPointF, QPointF, bool)

    def __init__(self) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self.scroll_slices = False
        self.draw_box = False
        self._drawing = False
        self._wheel_rest = 0.0

    def mouseDragEvent(self, ev: object, axis: int | None = None) -> None:  # noqa: N802 - pg API
        button = ev.button()  # type: ignore[attr-defined]
        if button == Qt.MouseButton.RightButton:
            ev.accept()  # type: ignore[attr-defined]
            delta = ev.screenPos() - ev.lastScreenPos()  # type: ignore[attr-defined]
            self.window_dragged.emit(float(delta.x()), float(delta.y()))
            return
        if ev.isStart():  # type: ignore[attr-defined]
            # decided once per drag, so letting go of Shift half-way does not start a pan
            shift = bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)  # type: ignore[attr-defined]
            self._drawing = button == Qt.MouseButton.LeftButton and (self.draw_box or shift)
        if self._drawing and button == Qt.MouseButton.LeftButton:
            ev.accept()  # type: ignore[attr-defined]
            start = self.mapToView(ev.buttonDownPos(button))  # type: ignore[attr-defined]
            end = self.mapToView(ev.pos())  # type: ignore[attr-defined]
            self.box_dragged.emit(start, end, bool(ev.isFinish()))  # type: ignore[attr-defined]
            return
        super().mouseDragEvent(ev, axis)

    def wheelEvent(self, ev: object, axis: int | None = None) -> None:  # noqa: N802 - pg API
        ctrl = bool(ev.modifiers() & Qt.KeyboardModifier.ControlModifier)  # type: ignore[attr-defined]
        if self.scroll_slices and not ctrl:
            ev.accept()  # type: ignore[attr-defined]
            self._wheel_rest += ev.delta() / 120.0  # type: ignore[attr-defined]
            steps = int(self._wheel_rest)
            if steps:
                self._wheel_rest -= steps
                self.slice_scrolled.emit(-steps)
            return
        super().wheelEvent(ev, axis)


class SliceSlider(QSlider):
    """Horizontal slider that marks the slice the model used with an orange triangle."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self._marker: int | None = None
        self.setMinimumHeight(24)

    @property
    def marker(self) -> int | None:
        return self._marker

    def set_marker(self, index: int | None) -> None:
        self._marker = index
        self.setToolTip("" if index is None else f"The model used slice {index + 1}")
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        super().paintEvent(event)
        if self._marker is None or self.maximum() <= self.minimum():
            return
        opt = QStyleOptionSlider()
        self.initStyleOption(opt)
        style = self.style()
        groove = style.subControlRect(
            QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderGroove, self
        )
        handle = style.subControlRect(
            QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderHandle, self
        )
        span = groove.width() - handle.width()
        pos = QStyle.sliderPositionFromValue(self.minimum(), self.maximum(), self._marker, span)
        x = groove.x() + handle.width() / 2 + pos
        y = self.height() - 1
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(MARKER_COLOUR)
        painter.drawPolygon(QPolygonF([QPointF(x, y - 7), QPointF(x - 5, y), QPointF(x + 5, y)]))
        painter.end()


class MmScaleBar(pg.ScaleBar):
    """A scale bar whose length is a round number of millimetres for the current zoom."""

    def __init__(self, mm_per_unit: float, target_px: float = 110.0) -> None:
        super().__init__(size=10.0 / mm_per_unit, width=4, brush="w", pen="k", suffix="")
        self.mm_per_unit = mm_per_unit
        self.target_px = target_px
        self.text.setColor("w")

    def set_mm_per_unit(self, mm_per_unit: float) -> None:
        self.mm_per_unit = mm_per_unit
        self.updateBar()

    def updateBar(self) -> None:  # noqa: N802 - pg API
        view = self.parentItem()
        if view is None:
            return
        p0 = view.mapViewToDevice(QPointF(0.0, 0.0))
        p1 = view.mapViewToDevice(QPointF(1.0, 0.0))
        if p0 is None or p1 is None:
            return
        px_per_unit = math.hypot(p1.x() - p0.x(), p1.y() - p0.y())
        if px_per_unit <= 0:
            return
        wanted_mm = self.target_px / px_per_unit * self.mm_per_unit
        nice = min(_NICE_MM, key=lambda mm: abs(math.log(mm / wanted_mm)))
        self.size = nice / self.mm_per_unit
        self.text.setText(f"{nice:g} mm")
        super().updateBar()


__all__ = [
    "MARKER_COLOUR",
    "WINDOW_PRESETS",
    "ImageViewBox",
    "MmScaleBar",
    "SliceSlider",
    "auto_window",
    "overlay_lut",
]
