"""Gestures and checks on the image viewer for the desktop tests: a real mouse drag, fitted."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from sos_desktop.viewer import ImageViewer


def is_fitted(viewer: ImageViewer) -> bool:
    """The whole image in view, centred, filling the view along one axis."""
    img = viewer.image_item.sceneBoundingRect()
    view = viewer.view.sceneBoundingRect()
    inside = view.adjusted(-1, -1, 1, 1).contains(img)
    centred = (img.center() - view.center()).manhattanLength() < 2.0
    fills = max(img.width() / view.width(), img.height() / view.height()) > 0.94
    return inside and centred and fills


def drag(
    viewer: ImageViewer,
    qtbot: Any,
    a: tuple[float, float],
    b: tuple[float, float],
    modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier,
) -> None:
    """A real left-button drag on the image from pixel `a` to pixel `b`, with `modifiers`."""
    port = viewer.graphics.viewport()

    def at(x: float, y: float) -> Any:
        return viewer.graphics.mapFromScene(viewer.view.mapViewToScene(QPointF(x, y)))

    left = Qt.MouseButton.LeftButton
    qtbot.mousePress(port, left, modifiers, at(*a))
    for t in (0.25, 0.6, 1.0):  # moves carry the modifiers too (QTest.mouseMove cannot)
        qtbot.wait(40)  # pyqtgraph drops moves that come faster than its mouse rate limit
        p = at(a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))
        move = QMouseEvent(
            QEvent.Type.MouseMove, QPointF(p), QPointF(port.mapToGlobal(p)),
            Qt.MouseButton.NoButton, left, modifiers,
        )  # fmt: skip
        QApplication.sendEvent(port, move)
    qtbot.mouseRelease(port, left, modifiers, at(*b))
