"""`ImageViewer`: the pyqtgraph image view with slices, window/level, overlay and boxes.

Coordinates are image pixels: x = column, y = row (row-major ImageItems, y pointing down), so
prediction and crop boxes [x0, y0, x1, y1] need no conversion. Non-square pixels are shown at
their true shape by locking the view's aspect to the pixel spacing. A case opens fitted (whole
image, centred) and the aspect lock keeps the whole image in view through window resizes until
the user zooms. A thin frame marks the image's edge, because CT and phantom images fade to black
at their borders and on a black view a whole image would otherwise look cropped.
Thread affinity: GUI thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import (
    QGraphicsRectItem,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from sos_desktop.viewer_boxes import BoxLayer
from sos_desktop.viewer_items import (
    WINDOW_PRESETS,
    ImageViewBox,
    MmScaleBar,
    SliceSlider,
    auto_window,
    overlay_lut,
)
from sos_desktop.viewer_toolbar import EmptyState, ViewerToolbar

logger = logging.getLogger(__name__)

Spacing2D = tuple[float, float] | None
SliceGetter = Callable[[int], tuple[np.ndarray, Spacing2D]]
Box = tuple[float, float, float, float]
PLACEHOLDER = "Open a study: File \u25b8 Open file\u2026 or Open folder\u2026, or drop it here."
FRAME_COLOUR = QColor(110, 110, 110)
MIN_BOX_PX = 2.0  # a drawn box is at least this wide and tall (image pixels)


class ImageViewer(QWidget):
    """Shows one 2-D image, or a volume one sagittal slice at a time.

    Signals: `slice_changed(int)`, `window_changed(float, float)` (centre, width),
    `crop_box_changed(object)` (Box or None), `cursor_moved(str)`, and
    `open_file_requested()` / `open_folder_requested()` from the empty-state buttons.
    """

    slice_changed = Signal(int)
    window_changed = Signal(float, float)
    crop_box_changed = Signal(object)
    cursor_moved = Signal(str)
    open_file_requested = Signal()
    open_folder_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pixels: np.ndarray | None = None
        self._spacing: Spacing2D = None
        self._getter: SliceGetter | None = None
        self._hu = False
        self._window = (0.0, 1.0)
        self._cam: np.ndarray | None = None
        self._cam_slice: int | None = None
        self._build()

    # --- construction -------------------------------------------------------------------------
    def _build(self) -> None:
        self.view = ImageViewBox()
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("k")
        self.graphics.addItem(self.view)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item.setZValue(10)
        self.view.addItem(self.image_item)
        self.view.addItem(self.overlay_item)
        self.frame_item = QGraphicsRectItem()
        pen = QPen(FRAME_COLOUR, 0)
        pen.setCosmetic(True)
        self.frame_item.setPen(pen)
        self.frame_item.setZValue(5)  # above the image, under the attention map and boxes
        self.view.addItem(self.frame_item)
        self.boxes = BoxLayer(self.view)
        self.boxes.crop_box_changed.connect(self.crop_box_changed)
        self.scale_bar = MmScaleBar(1.0)
        self.scale_bar.setParentItem(self.view)
        self.scale_bar.anchor((1, 1), (1, 1), offset=(-24, -24))
        self.scale_bar.setVisible(False)
        self.view.window_dragged.connect(self._on_window_dragged)
        self.view.slice_scrolled.connect(self._on_slice_scrolled)
        self.view.box_dragged.connect(self._on_box_dragged)
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)

        self.stack = QStackedWidget()
        self.stack.addWidget(self._build_placeholder())
        self.stack.addWidget(self.graphics)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._build_toolbar())
        layout.addWidget(self.stack, 1)
        layout.addLayout(self._build_slice_row())
        self.info = QLabel(" ")
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.info)
        self.clear()

    def _build_placeholder(self) -> QWidget:
        page = EmptyState(PLACEHOLDER)
        self.placeholder = page.label
        page.open_file.clicked.connect(self.open_file_requested)
        page.open_folder.clicked.connect(self.open_folder_requested)
        return page

    def _build_toolbar(self) -> ViewerToolbar:
        bar = ViewerToolbar()
        self.preset_actions = bar.preset_actions
        for name, action in bar.preset_actions.items():
            action.triggered.connect(lambda _=False, n=name: self.apply_preset(n))
        bar.fit_button.clicked.connect(self.fit)
        self.overlay_toggle, self.opacity, self.colormap = (
            bar.overlay_toggle,
            bar.opacity,
            bar.colormap,
        )
        self.overlay_toggle.toggled.connect(self._update_overlay)
        self.opacity.valueChanged.connect(self._update_overlay)
        self.colormap.currentTextChanged.connect(self._on_colormap_changed)
        self._on_colormap_changed(self.colormap.currentText())
        self.reset_box_button = bar.reset_box_button
        self.reset_box_button.clicked.connect(self.reset_crop_box)
        self.draw_box_button = bar.draw_box_button
        self.draw_box_button.toggled.connect(self._on_draw_toggled)
        return bar

    def _build_slice_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.slice_label = QLabel("")
        self.slice_slider = SliceSlider()
        self.slice_slider.valueChanged.connect(self._on_slider_moved)
        self.model_slice_button = QPushButton("Go to model slice")
        self.model_slice_button.clicked.connect(self.go_to_model_slice)
        row.addWidget(self.slice_label)
        row.addWidget(self.slice_slider, 1)
        row.addWidget(self.model_slice_button)
        self._slice_widgets = (self.slice_label, self.slice_slider, self.model_slice_button)
        return row

    # --- content ------------------------------------------------------------------------------
    def clear(self, message: str = PLACEHOLDER) -> None:
        """Empty state: a friendly prompt with Open buttons."""
        self._pixels, self._getter, self._cam = None, None, None
        self.placeholder.setText(message)
        self.stack.setCurrentIndex(0)
        self.boxes.clear()
        self.draw_box_button.setChecked(False)
        self._update_box_buttons()
        self.frame_item.setVisible(False)
        self.overlay_item.clear()
        self.scale_bar.setVisible(False)
        for w in self._slice_widgets:
            w.setVisible(False)
        self.info.setText(" ")

    def show_image(
        self, pixels: np.ndarray, spacing: Spacing2D, window: tuple[float, float] | None, hu: bool
    ) -> None:
        """Show a 2-D image (rows, cols) in modality units; `hu` enables the CT presets."""
        self._getter = None
        self.view.scroll_slices = False
        for w in self._slice_widgets:
            w.setVisible(False)
        self._show_pixels(pixels, spacing, window, hu)
        self.fit()

    def show_volume(
        self,
        count: int,
        start: int,
        getter: SliceGetter,
        window: tuple[float, float] | None,
        hu: bool,
        axis_name: str = "Sagittal slice",
    ) -> None:
        """Show a stack of `count` 2-D slices from `getter`, starting at slice `start`."""
        self._getter = getter
        self._axis_name = axis_name
        self.view.scroll_slices = True
        start = int(min(max(start, 0), count - 1))
        with pg.SignalBlock(self.slice_slider.valueChanged, self._on_slider_moved):
            self.slice_slider.setRange(0, count - 1)
            self.slice_slider.setValue(start)
        self.slice_slider.set_marker(None)
        for w in self._slice_widgets:
            w.setVisible(True)
        self.model_slice_button.setEnabled(False)
        pixels, spacing = getter(start)
        self._show_pixels(pixels, spacing, window, hu)
        self._update_slice_label()
        self.fit()

    def _show_pixels(
        self, pixels: np.ndarray, spacing: Spacing2D, window: tuple[float, float] | None, hu: bool
    ) -> None:
        self._pixels, self._spacing, self._hu = pixels, spacing, hu
        self.stack.setCurrentIndex(1)
        self.image_item.setImage(pixels, autoLevels=False)
        self._frame(pixels.shape)
        for name in WINDOW_PRESETS:
            self.preset_actions[name].setEnabled(hu)
        self.set_window(*(window or auto_window(pixels)))
        sy, sx = spacing if spacing else (1.0, 1.0)
        self.view.setAspectLocked(True, ratio=sx / sy)
        self.scale_bar.setVisible(spacing is not None)
        if spacing is not None:
            self.scale_bar.set_mm_per_unit(sx)
        self._update_overlay()
        self._update_suggested()
        self._update_box_buttons()

    @property
    def current_slice(self) -> int | None:
        return self.slice_slider.value() if self._getter is not None else None

    @property
    def pixels(self) -> np.ndarray | None:
        return self._pixels

    @property
    def spacing(self) -> Spacing2D:
        return self._spacing

    def set_slice(self, index: int) -> None:
        if self._getter is not None:
            self.slice_slider.setValue(index)

    def set_model_slice(self, index: int | None) -> None:
        """Mark the slice the model used (volumes); None removes the mark."""
        self.slice_slider.set_marker(index)
        self.model_slice_button.setEnabled(index is not None and self._getter is not None)
        self._update_slice_label()

    def go_to_model_slice(self) -> None:
        if self.slice_slider.marker is not None:
            self.set_slice(self.slice_slider.marker)

    def fit(self) -> None:
        """Whole image in view, centred, aspect kept (the view's aspect lock)."""
        if self._pixels is not None:
            # only the image: a crop box left from the previous case must not widen the range
            self.view.autoRange(padding=0.02, items=[self.image_item])

    def _frame(self, shape: tuple[int, ...]) -> None:
        rows, cols = shape[-2], shape[-1]
        self.frame_item.setRect(0.0, 0.0, float(cols), float(rows))
        self.frame_item.setVisible(True)

    # --- window / level -----------------------------------------------------------------------
    @property
    def window(self) -> tuple[float, float]:
        return self._window

    def set_window(self, centre: float, width: float) -> None:
        width = max(float(width), 1e-6)
        self._window = (float(centre), width)
        self.image_item.setLevels((centre - width / 2.0, centre + width / 2.0))
        self.window_changed.emit(float(centre), width)

    def apply_preset(self, name: str) -> None:
        """ "auto" (data percentiles), or a CT preset ("bone", "soft tissue") for HU images."""
        if self._pixels is None:
            return
        if name == "auto" or not self._hu:
            self.set_window(*auto_window(self._pixels))
        else:
            self.set_window(*WINDOW_PRESETS[name])

    def _on_window_dragged(self, dx: float, dy: float) -> None:
        if self._pixels is None:
            return
        centre, width = self._window
        step = max(auto_window(self._pixels)[1], 1.0) / 400.0  # full range over ~400 px
        self.set_window(centre - dy * step, width + dx * step)

    # --- slices -------------------------------------------------------------------------------
    def _on_slice_scrolled(self, steps: int) -> None:
        self.set_slice(self.slice_slider.value() + steps)

    def _on_slider_moved(self, index: int) -> None:
        if self._getter is None:
            return
        pixels, spacing = self._getter(index)
        self._pixels, self._spacing = pixels, spacing
        self.image_item.setImage(pixels, autoLevels=False)
        self._frame(pixels.shape)
        self.image_item.setLevels(
            (self._window[0] - self._window[1] / 2, self._window[0] + self._window[1] / 2)
        )
        self._update_overlay()
        self._update_suggested()
        self._update_slice_label()
        self.slice_changed.emit(index)

    def _update_slice_label(self) -> None:
        if self._getter is None:
            return
        n = self.slice_slider.maximum() + 1
        text = f"{getattr(self, '_axis_name', 'Slice')} {self.slice_slider.value() + 1} / {n}"
        if self.slice_slider.marker is not None:
            text += f"  (model: {self.slice_slider.marker + 1})"
        self.slice_label.setText(text)

    # --- overlay ------------------------------------------------------------------------------
    def set_overlay(self, cam: np.ndarray | None, slice_index: int | None = None) -> None:
        """Grad-CAM map in [0, 1] with the displayed image's shape; for volumes its slice."""
        self._cam, self._cam_slice = cam, slice_index
        self._update_overlay()

    def set_overlay_visible(self, on: bool) -> None:
        self.overlay_toggle.setChecked(on)

    def set_overlay_opacity(self, value: float) -> None:
        self.opacity.setValue(round(value * 100))

    def set_overlay_colormap(self, name: str) -> None:
        self.colormap.setCurrentText(name)

    def overlay_shown(self) -> bool:
        return self.overlay_item.isVisible() and self.overlay_item.image is not None

    def _on_colormap_changed(self, name: str) -> None:
        self._lut = overlay_lut(name)
        self.overlay_item.setLookupTable(self._lut)

    def _update_overlay(self) -> None:
        cam = self._cam
        on_slice = self._on_model_slice()
        fits = cam is not None and self._pixels is not None and cam.shape == self._pixels.shape
        show = bool(fits and on_slice and self.overlay_toggle.isChecked())
        if fits and cam is not None:
            self.overlay_item.setImage(cam, levels=(0.0, 1.0), lut=self._lut)
        self.overlay_item.setVisible(show)
        self.overlay_item.setOpacity(self.opacity.value() / 100.0)

    @property
    def overlay_lut_array(self) -> np.ndarray:
        return self._lut

    @property
    def cam(self) -> np.ndarray | None:
        return self._cam

    # --- boxes --------------------------------------------------------------------------------
    def _on_model_slice(self) -> bool:
        return self._getter is None or self._cam_slice in (None, self.current_slice)

    def clear_annotations(self) -> None:
        """Forget what belonged to the previous case: attention map, suggested and crop box."""
        self.set_overlay(None)
        self.boxes.clear()
        self.draw_box_button.setChecked(False)
        self._update_box_buttons()

    def set_suggested_box(self, box: Box | None) -> None:
        """Draw the model's suggested SOS box; the crop box starts from it unless the expert
        already drew one for this case."""
        self.boxes.set_suggested(box, self._pixels is not None and self._on_model_slice())
        if not self.boxes.edited:
            self.reset_crop_box()
        self._update_box_buttons()

    def _update_suggested(self) -> None:
        self.boxes.show_suggested(self._pixels is not None and self._on_model_slice())

    @property
    def suggested_box_shown(self) -> Box | None:
        """The suggested box if it is drawn now (it belongs to the model's slice)."""
        return self.boxes.suggested_shown

    def reset_crop_box(self) -> None:
        """Crop box = the suggested box; none before a suggestion exists (nothing made up)."""
        if self._pixels is None:
            self.boxes.remove_crop()
        else:
            self.boxes.reset_crop()
        self._update_box_buttons()

    def crop_box(self) -> Box | None:
        """The expert's crop box [x0, y0, x1, y1] in image pixels, or None."""
        return self.boxes.crop_box()

    def set_crop_box(self, box: Box) -> None:
        """Put the crop box where the expert wants it (as drawing it does)."""
        if self._pixels is not None:
            self.boxes.set_crop(box)

    def _update_box_buttons(self) -> None:
        self.reset_box_button.setEnabled(self.boxes.suggested is not None)
        self.draw_box_button.setEnabled(self._pixels is not None)

    def _on_draw_toggled(self, on: bool) -> None:
        self.view.draw_box = on
        self.graphics.setCursor(Qt.CursorShape.CrossCursor if on else Qt.CursorShape.ArrowCursor)

    def _on_box_dragged(self, start: QPointF, end: QPointF, finished: bool) -> None:
        """Left-drag in draw mode (or Shift+drag): the crop box follows, and is set on release."""
        if self._pixels is None:
            return
        x0, x1 = sorted((float(start.x()), float(end.x())))
        y0, y1 = sorted((float(start.y()), float(end.y())))
        box = (x0, y0, max(x1, x0 + MIN_BOX_PX), max(y1, y0 + MIN_BOX_PX))
        if not finished:
            self.boxes.place_crop(box)
            return
        self.boxes.set_crop(box)
        self.draw_box_button.setChecked(False)  # one box per press of "Draw box"

    # --- cursor -------------------------------------------------------------------------------
    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        if self._pixels is None or not self.view.sceneBoundingRect().contains(scene_pos):
            return
        p = self.view.mapSceneToView(scene_pos)
        col, row = int(np.floor(p.x())), int(np.floor(p.y()))
        rows, cols = self._pixels.shape
        if not (0 <= row < rows and 0 <= col < cols):
            self.info.setText(" ")
            return
        self.info.setText(self.describe_pixel(row, col))
        self.cursor_moved.emit(self.info.text())

    def describe_pixel(self, row: int, col: int) -> str:
        """Text for the pixel under the cursor: index, value (HU for CT) and mm position."""
        if self._pixels is None:
            return ""
        value = self._pixels[row, col]
        unit = " HU" if self._hu else ""
        text = f"row {row}, col {col}   value {float(value):.6g}{unit}"
        if self._spacing is not None:
            sy, sx = self._spacing
            text += f"   x {col * sx:.1f} mm, y {row * sy:.1f} mm"
        return text
