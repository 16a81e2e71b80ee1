"""Help dialogs: About (with the model card) and the keyboard shortcut list."""

from __future__ import annotations

import dataclasses
import html
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QInputDialog,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

import sos_core

if TYPE_CHECKING:
    from sos_core.imaging.study import SeriesInfo

logger = logging.getLogger(__name__)

INTENDED_USE = (
    "SOS Review suggests the fusion stage of the spheno-occipital synchondrosis for an expert "
    "to confirm or correct. The embedded model was trained on synthetic phantoms, not on "
    "patients: it is a research tool, not a clinical device, and never a diagnosis."
)
_CARD_FIELDS = (
    ("version", "Version"),
    ("stage_names", "Stages"),
    ("scheme", "Stage scheme"),
    ("architecture", "Architecture"),
    ("intended_use", "Intended use"),
    ("data_summary", "Training data"),
    ("training_data", "Training data"),
    ("metrics", "Validation metrics"),
    ("created", "Created"),
    ("licence", "Licence"),
    ("license", "Licence"),
    ("weights_sha256", "Weights SHA-256"),
)


def card_rows(card: Any) -> list[tuple[str, str]]:
    """(label, text) rows for the fields a model card has; unknown cards give fewer rows."""
    if card is None:
        return []
    values = dataclasses.asdict(card) if dataclasses.is_dataclass(card) else {}
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    for key, label in _CARD_FIELDS:
        value = values.get(key, getattr(card, key, None))
        if value in (None, "", (), [], {}) or label in seen:
            continue
        seen.add(label)
        if isinstance(value, dict):
            text = ", ".join(f"{k}: {v:.3g}" if isinstance(v, float) else f"{k}: {v}"
                             for k, v in value.items())  # fmt: skip
        elif isinstance(value, list | tuple):
            text = ", ".join(str(v) for v in value)
        else:
            text = str(value)
        rows.append((label, text))
    return rows


class AboutDialog(QDialog):
    """App version, intended use, and the active model's card (or that there is none)."""

    def __init__(self, card: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About SOS Review")
        self.setMinimumWidth(520)
        layout = QVBoxLayout(self)
        head = QLabel(f"<h2>SOS Review {html.escape(sos_core.__version__)}</h2>")
        layout.addWidget(head)
        use = QLabel(INTENDED_USE)
        use.setWordWrap(True)
        layout.addWidget(use)
        rows = card_rows(card)
        if rows:
            body = "".join(
                f"<tr><td><b>{html.escape(k)}</b>&nbsp;</td><td>{html.escape(v)}</td></tr>"
                for k, v in rows
            )
            model = QLabel(f"<h3>Model</h3><table>{body}</table>")
        else:
            model = QLabel(
                "<h3>Model</h3>No model has been loaded yet; it is loaded with the first "
                "prediction."
            )
        model.setWordWrap(True)
        self.model_label = model
        layout.addWidget(model)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)


class ShortcutsDialog(QDialog):
    """A table of every shortcut, built from the window's actions so it cannot drift."""

    def __init__(self, shortcuts: Sequence[tuple[str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.resize(460, 520)
        layout = QVBoxLayout(self)
        table = QTableWidget(len(shortcuts), 2)
        table.setHorizontalHeaderLabels(("Keys", "Action"))
        table.verticalHeader().setVisible(False)
        table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        for row, (keys, action) in enumerate(shortcuts):
            table.setItem(row, 0, QTableWidgetItem(keys))
            table.setItem(row, 1, QTableWidgetItem(action))
        self.table = table
        layout.addWidget(table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)


def ask_series(parent: QWidget, series: Sequence[SeriesInfo]) -> str | None:
    """Let the user pick one series of a folder; returns its key, or None if cancelled."""
    names = [f"{s.modality} \u2014 {s.description} ({s.n_files} files)" for s in series]
    choice, ok = QInputDialog.getItem(parent, "Choose a series", "Series:", names, 0, False)
    return series[names.index(choice)].key if ok and choice in names else None
