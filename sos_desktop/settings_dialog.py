"""The Settings dialog: reviewer, device, overlay defaults, data folder, forensic age hint."""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from sos_desktop.settings import COLORMAPS, DEVICES, AppSettings

logger = logging.getLogger(__name__)

_DEVICE_LABELS = {
    "auto": "Automatic (GPU if available)",
    "cpu": "CPU only",
    "cuda": "NVIDIA GPU (CUDA)",
}


class SettingsDialog(QDialog):
    """Edits `AppSettings`; writes them only on OK (GUI thread)."""

    def __init__(self, settings: AppSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(460)
        self._settings = settings
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)

        self.reviewer = QLineEdit(settings.reviewer)
        self.reviewer.setPlaceholderText("Your name as it should appear on labels")
        form.addRow("Reviewer name:", self.reviewer)

        self.device = QComboBox()
        for dev in DEVICES:
            self.device.addItem(_DEVICE_LABELS[dev], dev)
        self.device.setCurrentIndex(DEVICES.index(settings.device))
        form.addRow("Run the model on:", self.device)

        self.overlay_visible = QCheckBox("Show the attention map when a prediction arrives")
        self.overlay_visible.setChecked(settings.overlay_visible)
        form.addRow("Overlay:", self.overlay_visible)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(round(settings.overlay_opacity * 100))
        form.addRow("Overlay opacity:", self.opacity)
        self.colormap = QComboBox()
        self.colormap.addItems(COLORMAPS)
        self.colormap.setCurrentText(settings.overlay_colormap)
        form.addRow("Overlay colours:", self.colormap)

        folder_row = QHBoxLayout()
        self.data_folder = QLineEdit(str(settings.data_folder))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._on_browse_clicked)
        folder_row.addWidget(self.data_folder, 1)
        folder_row.addWidget(browse)
        form.addRow("Data folder:", folder_row)

        self.age_hint = QCheckBox("Show the published mean age for the confirmed stage")
        self.age_hint.setChecked(settings.age_hint_enabled)
        form.addRow("Forensic age hint:", self.age_hint)
        note = QLabel(
            "The hint names its study and population; populations differ, so it is never an "
            "age estimate for one person."
        )
        note.setWordWrap(True)
        form.addRow("", note)

        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def _on_browse_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Data folder", self.data_folder.text())
        if folder:
            self.data_folder.setText(folder)

    def accept(self) -> None:
        s = self._settings
        s.reviewer = self.reviewer.text()
        s.device = str(self.device.currentData())
        s.overlay_visible = self.overlay_visible.isChecked()
        s.overlay_opacity = self.opacity.value() / 100.0
        s.overlay_colormap = self.colormap.currentText()
        if self.data_folder.text().strip():
            s.data_folder = self.data_folder.text().strip()
        s.age_hint_enabled = self.age_hint.isChecked()
        s.sync()
        logger.info("settings saved")
        super().accept()
