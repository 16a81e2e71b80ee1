"""The viewer's two boxes: the model's suggested SOS box and the expert's adjustable crop box.

Both are in image pixels [x0, y0, x1, y1] (x = column, y = row). The crop box is a
`pg.RectROI` with a scale handle on every corner; it starts from the suggested box because what
the expert leaves there is what the teacher will train on. Before a suggestion exists there is
no crop box until the expert draws one, and a box the expert made is not replaced by a
suggestion that arrives later.
"""

from __future__ import annotations

import logging

import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QPen
from PySide6.QtWidgets import QGraphicsRectItem

logger = logging.getLogger(__name__)

Box = tuple[float, float, float, float]
CROP_COLOUR = (255, 220, 0)


class BoxLayer(QObject):
    """Owns the suggested-box item and the crop ROI inside one ViewBox (GUI thread).

    Signal `crop_box_changed(object)`: the crop box (Box or None) after an edit or a reset.
    """

    crop_box_changed = Signal(object)

    def __init__(self, view: pg.ViewBox) -> None:
        super().__init__()
        self.view = view
        self.suggested: Box | None = None
        self.roi: pg.RectROI | None = None
        self.edited = False  # the expert drew, moved or resized the crop box of this case
        self.suggested_item = QGraphicsRectItem()
        pen = QPen(Qt.GlobalColor.cyan, 0, Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        self.suggested_item.setPen(pen)
        self.suggested_item.setZValue(15)
        self.suggested_item.setVisible(False)
        self.suggested_item.setToolTip("Box suggested by the model")
        view.addItem(self.suggested_item)

    def set_suggested(self, box: Box | None, visible: bool) -> None:
        self.suggested = box
        self.show_suggested(visible)

    def show_suggested(self, visible: bool) -> None:
        """Show the suggested box if there is one and `visible` (e.g. on the model's slice)."""
        if self.suggested is None or not visible:
            self.suggested_item.setVisible(False)
            return
        x0, y0, x1, y1 = self.suggested
        self.suggested_item.setRect(x0, y0, x1 - x0, y1 - y0)
        self.suggested_item.setVisible(True)

    @property
    def suggested_shown(self) -> Box | None:
        return self.suggested if self.suggested_item.isVisible() else None

    def reset_crop(self) -> None:
        """Crop box = the suggested box; no box at all while there is none.

        A box made up in the middle of the image would read as a suggestion; until the model
        answers, the expert draws one (`set_crop`, or a drag in the viewer).
        """
        self.edited = False
        if self.suggested is None:
            self.remove_crop()
            return
        self.place_crop(self.suggested)
        self.crop_box_changed.emit(self.crop_box())

    def set_crop(self, box: Box) -> None:
        """The expert's box: kept when a (new) suggestion arrives later for the same case."""
        self.place_crop(box)
        self.edited = True
        self.crop_box_changed.emit(self.crop_box())

    def place_crop(self, box: Box) -> None:
        """Move (or make) the crop ROI without announcing it, e.g. while a box is being drawn."""
        x0, y0, x1, y1 = box
        if self.roi is not None:  # move the existing box: building a RectROI costs ~10 ms
            self.roi.setPos((x0, y0), update=False, finish=False)
            self.roi.setSize((x1 - x0, y1 - y0), finish=False)
            return
        roi = pg.RectROI((x0, y0), (x1 - x0, y1 - y0), pen=pg.mkPen(CROP_COLOUR, width=2))
        roi.addScaleHandle((0, 0), (1, 1))
        roi.addScaleHandle((1, 0), (0, 1))
        roi.addScaleHandle((0, 1), (1, 0))
        roi.setZValue(20)
        roi.setToolTip("SOS crop box: drag to move, drag a corner to resize")
        roi.sigRegionChangeFinished.connect(self._on_roi_changed)
        self.view.addItem(roi)
        self.roi = roi

    def crop_box(self) -> Box | None:
        """The crop box in image pixels, or None when there is none."""
        if self.roi is None:
            return None
        pos, size = self.roi.pos(), self.roi.size()
        x0, y0 = float(pos.x()), float(pos.y())
        return (x0, y0, x0 + float(size.x()), y0 + float(size.y()))

    def remove_crop(self) -> None:
        if self.roi is not None:
            self.view.removeItem(self.roi)
            self.roi = None
            self.crop_box_changed.emit(None)

    def clear(self) -> None:
        self.suggested = None
        self.edited = False
        self.suggested_item.setVisible(False)
        self.remove_crop()

    def _on_roi_changed(self, _roi: object) -> None:
        self.edited = True  # the expert moved or resized it
        self.crop_box_changed.emit(self.crop_box())
