"""`PredictionPanel`: the model's answer in words and bars, with its version and device."""

from __future__ import annotations

import html
import logging

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QLabel,
    QProgressBar,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from sos_core.stages import StageScheme, get_scheme, scheme_for_names
from sos_desktop.prediction_service import PredictionResult

logger = logging.getLogger(__name__)

# Words for flags whose message is missing; normally the Prediction carries one sentence each.
FLAG_WORDS = {
    "low_confidence": "The model is not confident about this image.",
    "between_stages": "The image looks between two stages.",
    "attention_off_target": "The model's attention is off the cranial base.",
    "unsuitable_image": "This image may not show the synchondrosis well enough to stage.",
}
_DEVICE_WORDS = {"cpu": "CPU", "cuda": "GPU (CUDA)", "mps": "GPU (Apple MPS)"}


def device_words(device: str) -> str:
    """'cuda:0' → 'GPU (CUDA)'; unknown names are shown as they are."""
    return _DEVICE_WORDS.get(device.split(":", 1)[0].lower(), device)


class PredictionPanel(QWidget):
    """Shows one `PredictionResult`, or why there is none (GUI thread)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        layout = QVBoxLayout(self)
        heading = QLabel("<b>Prediction</b>")
        layout.addWidget(heading)
        self.stage_label = QLabel()
        font = self.stage_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.35)
        font.setBold(True)
        self.stage_label.setFont(font)
        self.stage_label.setWordWrap(True)
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.message = QLabel()
        self.message.setWordWrap(True)
        layout.addWidget(self.stage_label)
        layout.addWidget(self.description)
        layout.addWidget(self.message)
        self.bars_frame = QFrame()
        self.bars = QGridLayout(self.bars_frame)
        self.bars.setContentsMargins(0, 4, 0, 4)
        self.bars.setColumnStretch(1, 1)
        layout.addWidget(self.bars_frame)
        self.flags_label = QLabel()
        self.flags_label.setWordWrap(True)
        self.flags_label.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.flags_label)
        self.model_label = QLabel()
        self.model_label.setWordWrap(True)
        self.model_label.setStyleSheet("color: palette(window-text);")
        self.model_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.model_label)
        self.result: PredictionResult | None = None
        self.show_message("Open a study to see a prediction.")

    def _clear_bars(self) -> None:
        while self.bars.count():
            item = self.bars.takeAt(0)
            if item is not None and item.widget() is not None:
                item.widget().deleteLater()
        self.probability_bars: list[QProgressBar] = []

    def show_message(self, text: str) -> None:
        """No prediction to show: say why (empty, busy, or no model) in one sentence."""
        self.result = None
        self.stage_label.setText("")
        self.stage_label.setVisible(False)
        self.description.setText("")
        self.message.setText(text)
        self.flags_label.setText("")
        self.model_label.setText("")
        self._clear_bars()
        self.bars_frame.setVisible(False)

    def show_busy(self, text: str = "Predicting\u2026") -> None:
        self.show_message(text)

    def show_result(self, result: PredictionResult) -> None:
        """Stage name and description, a bar per stage, flags in words, model and device."""
        self.result = result
        self.stage_label.setVisible(True)
        pred = result.prediction
        scheme = self.scheme_for(result)
        names = result.stage_names or (scheme.names if scheme else ())
        self.stage_label.setText(f"Stage {pred.stage} \u00b7 {pred.stage_name}")
        desc = scheme.stage(pred.stage).description if scheme and pred.stage < len(scheme) else ""
        self.description.setText(desc)
        self.message.setText("")
        self._clear_bars()
        for i, p in enumerate(pred.probabilities):
            name = names[i] if i < len(names) else f"Stage {i}"
            label = QLabel(f"{i} {name}")
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setValue(round(p * 1000))
            bar.setFormat(f"{p * 100:.1f} %")
            bar.setToolTip(f"Probability of stage {i} ({name}): {p * 100:.1f} %")
            if i == pred.stage:
                label.setStyleSheet("font-weight: bold;")
            self.bars.addWidget(label, i, 0)
            self.bars.addWidget(bar, i, 1)
            self.probability_bars.append(bar)
        self.bars_frame.setVisible(True)
        self.flags_label.setText(self.flags_html(result))
        where = device_words(pred.device)
        text = f"Model {result.model_version} \u00b7 ran on {where} \u00b7 {pred.seconds:.2f} s"
        if pred.slice_index is not None:
            text += f" \u00b7 sagittal slice {pred.slice_index + 1}"
        self.model_label.setText(text)

    @staticmethod
    def scheme_for(result: PredictionResult) -> StageScheme | None:
        if result.stage_names:
            return scheme_for_names(result.stage_names)
        return get_scheme()

    @staticmethod
    def flag_sentences(result: PredictionResult) -> list[str]:
        pred = result.prediction
        return [
            msg or FLAG_WORDS.get(flag, flag)
            for flag, msg in zip(pred.flags, pred.messages, strict=True)
        ]

    def flags_html(self, result: PredictionResult) -> str:
        sentences = self.flag_sentences(result)
        if not sentences:
            return "<span style='color:#2e7d32'>No review flags.</span>"
        items = "".join(f"<li>{html.escape(s)}</li>" for s in sentences)
        return f"<b style='color:#e65100'>Needs expert review:</b><ul style='margin:0'>{items}</ul>"
