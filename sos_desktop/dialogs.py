"""Help dialogs: About (with the model card) and the keyboard shortcut list."""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
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
    from sos_desktop.prediction_service import ModelInfo

logger = logging.getLogger(__name__)

INTENDED_USE = (
    "SOS Review suggests the fusion stage of the spheno-occipital synchondrosis for an expert "
    "to confirm or correct. It is a research tool, not a clinical device, and never a diagnosis."
)
# Validation metrics shown to clinicians, in this order (the card holds more, e.g. the matrix).
_METRICS = (
    ("accuracy", "accuracy {:.1%}"),
    ("f1_macro", "macro-F1 {:.2f}"),
    ("kappa_quadratic", "quadratic kappa {:.2f}"),
    ("ece", "calibration error (ECE) {:.3f}"),
    ("pointing_game", "attention on the SOS (pointing game) {:.1%}"),
)


def _when(created: str) -> str:
    """'2026-11-26T00:54:39+00:00' → '2026-11-26 00:54 UTC' (as given if it does not parse)."""
    try:
        stamp = datetime.fromisoformat(str(created).replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return str(created)
    return f"{stamp:%Y-%m-%d %H:%M} UTC"


def training_summary(data: Mapping[str, Any]) -> str:
    """The card's training-data record in one line ("32 training cases, synthetic phantoms ...")."""
    parts = []
    if "train_cases" in data:
        images = data.get("train_images")
        extra = f" ({images} images)" if images and images != data["train_cases"] else ""
        parts.append(f"{data['train_cases']} training cases{extra}")
    if data.get("synthetic"):
        parts.append("synthetic phantoms (no patient images)")
    if data.get("modalities"):
        parts.append("modalities: " + ", ".join(str(m) for m in data["modalities"]))
    if data.get("dataset"):
        parts.append(f"dataset {data['dataset']}")
    shown = ("train_cases", "train_images", "synthetic", "modalities", "dataset")
    rest = [k for k in data if k not in shown]
    parts += [f"{k}: {data[k]}" for k in rest if isinstance(data[k], str | int | float)]
    return "; ".join(parts) or "not recorded"


def validation_summary(metrics: Mapping[str, Any]) -> str:
    """The card's validation metrics in words, with the number of validation cases."""
    val = metrics.get("validation") or {}
    shown = [
        fmt.format(float(val[k])) for k, fmt in _METRICS if isinstance(val.get(k), int | float)
    ]
    if not shown:
        return "not recorded"
    n = val.get("n")
    return ", ".join(shown) + (f" (on {n} validation cases)" if n else "")


def card_rows(card: Any, version: str | None = None) -> list[tuple[str, str]]:
    """(label, text) rows of a model card for the About dialog (RG-9): intended use, version,
    training data, validation metrics and the date of the last change; missing fields are left
    out, so stand-in cards give fewer rows."""
    if card is None:
        return []
    get = functools.partial(getattr, card)
    rows: list[tuple[str, str]] = [("Version", version or str(get("version", "unknown")))]
    if get("intended_use", ""):
        rows.append(("Intended use", str(get("intended_use"))))
    if isinstance(get("training_data", None), Mapping):
        rows.append(("Training data", training_summary(get("training_data"))))
    if isinstance(get("metrics", None), Mapping):
        rows.append(("Validation", validation_summary(get("metrics"))))
    if get("created", ""):
        rows.append(("Last changed", _when(get("created"))))
    if get("stage_names", ()):
        rows.append(("Stages", ", ".join(str(n) for n in get("stage_names"))))
    for key, label in (("architecture", "Architecture"), ("parent_version", "Retrained from"),
                       ("origin", "Origin"), ("licence", "Licence")):  # fmt: skip
        if get(key, None):
            rows.append((label, str(get(key))))
    return rows


class AboutDialog(QDialog):
    """App version, intended use, and the active model's card; `set_model` updates it in place
    when the model changes (reload, promotion). Non-modal."""

    def __init__(self, info: ModelInfo | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About SOS Review")
        self.setMinimumWidth(560)
        layout = QVBoxLayout(self)
        head = QLabel(f"<h2>SOS Review {html.escape(sos_core.__version__)}</h2>")
        layout.addWidget(head)
        use = QLabel(INTENDED_USE)
        use.setWordWrap(True)
        layout.addWidget(use)
        self.model_label = QLabel()
        self.model_label.setWordWrap(True)
        self.model_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.model_label)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.set_model(info)

    def set_model(self, info: ModelInfo | None) -> None:
        """Show `info`'s card (None: no model loaded yet)."""
        rows = card_rows(info.card, info.version) if info is not None else []
        if rows:
            body = "".join(
                f"<tr><td valign='top'><b>{html.escape(k)}</b>&nbsp;</td>"
                f"<td>{html.escape(v)}</td></tr>"
                for k, v in rows
            )
            self.model_label.setText(f"<h3>Model</h3><table>{body}</table>")
        else:
            self.model_label.setText(
                "<h3>Model</h3>No model is loaded yet; it is loaded with the first prediction."
            )
        self.adjustSize()


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
