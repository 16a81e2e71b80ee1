"""Viewer chrome: the control row above the image and the empty-state prompt."""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from sos_desktop.settings import COLORMAPS
from sos_desktop.viewer_items import WINDOW_PRESETS

logger = logging.getLogger(__name__)


class ViewerToolbar(QWidget):
    """Widgets only; the `ImageViewer` connects them (GUI thread).

    Compact tool buttons keep the window usable down to about 800 px wide (small laptops at
    150 % scaling).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 2, 4, 2)
        row.setSpacing(4)
        self.window_button = QToolButton()
        self.window_button.setText("Window")
        self.window_button.setToolTip("Window presets (right-drag on the image to adjust)")
        self.window_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.window_button)
        self.preset_actions: dict[str, QAction] = {}
        for name in ("auto", *WINDOW_PRESETS):
            self.preset_actions[name] = menu.addAction(name.capitalize())
        self.window_button.setMenu(menu)
        row.addWidget(self.window_button)
        self.fit_button = QToolButton()
        self.fit_button.setText("Fit")
        self.fit_button.setToolTip("Fit the image to the view (F)")
        row.addWidget(self.fit_button)
        row.addSpacing(8)
        self.overlay_toggle = QCheckBox("Map")  # short: the window must fit an 800 px screen
        self.overlay_toggle.setToolTip("Show the model's Grad-CAM attention map (O)")
        self.overlay_toggle.setChecked(True)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(45)
        self.opacity.setMinimumWidth(50)
        self.opacity.setMaximumWidth(110)
        self.opacity.setToolTip("Attention map opacity")
        self.colormap = QComboBox()
        self.colormap.addItems(COLORMAPS)
        self.colormap.setToolTip("Attention map colours")
        row.addWidget(self.overlay_toggle)
        row.addWidget(self.opacity, 1)
        row.addWidget(self.colormap)
        row.addSpacing(8)
        self.draw_box_button = QToolButton()
        self.draw_box_button.setText("Draw box")
        self.draw_box_button.setCheckable(True)
        self.draw_box_button.setToolTip(
            "Draw the SOS crop box: drag over the synchondrosis (Shift+drag draws at any time)"
        )
        row.addWidget(self.draw_box_button)
        self.reset_box_button = QToolButton()
        self.reset_box_button.setText("Reset")
        self.reset_box_button.setToolTip("Put the crop box back on the suggested SOS box")
        row.addWidget(self.reset_box_button)
        row.addStretch(1)


class EmptyState(QWidget):
    """What the viewer shows with no study: one friendly sentence and two Open buttons."""

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        box = QVBoxLayout(self)
        self.label = QLabel(text)
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label.setWordWrap(True)
        font = self.label.font()
        font.setPointSizeF(font.pointSizeF() * 1.3)
        self.label.setFont(font)
        self.open_file = QPushButton("Open file\u2026")
        self.open_folder = QPushButton("Open folder\u2026")
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.open_file)
        buttons.addWidget(self.open_folder)
        buttons.addStretch(1)
        box.addStretch(1)
        box.addWidget(self.label)
        box.addLayout(buttons)
        box.addStretch(1)
