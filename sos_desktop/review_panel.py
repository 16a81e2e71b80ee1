"""`ReviewPanel`: confirm or correct the stage, give a reason and note, save, undo.

The panel gathers the expert's input and writes one `ReviewDecision` through a `LabelSink`
(the review store once it lands). The crop box and slice come from the viewer through a
callable, and the reviewer's name from a callable that asks once (both injected).
Keys (bound by the main window): Enter saves (a confirmation when the chosen stage is the
predicted one), 0-3 choose a stage, Ctrl+Z undoes the last label. Thread affinity: GUI thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from sos_core.stages import StageScheme, get_scheme
from sos_desktop.label_sink import REASONS, LabelSink, ReviewDecision, SavedLabel

logger = logging.getLogger(__name__)

Box = tuple[float, float, float, float]
BoxProvider = Callable[[], tuple[Box | None, int | None]]
ReviewerProvider = Callable[[], str | None]
DEFAULT_REASON = "model_error"


class ReviewPanel(QWidget):
    """Signals: `saved(SavedLabel)`, `undone(SavedLabel)`, `changed()` (input edited)."""

    saved = Signal(object)
    undone = Signal(object)
    changed = Signal()

    def __init__(
        self,
        sink: LabelSink,
        reviewer: ReviewerProvider,
        box: BoxProvider,
        scheme: StageScheme | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.sink, self._reviewer, self._box = sink, reviewer, box
        self.scheme = scheme or get_scheme()
        self.case_id: str | None = None
        self.predicted_stage: int | None = None
        self.model_version: str | None = None
        self.age_hint_sex: Callable[[], str | None] = lambda: None
        self._build()
        self.set_case(None)

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("<b>Your review</b>"))
        grid = QGridLayout()
        self.group = QButtonGroup(self)
        self.group.setExclusive(True)
        self.stage_buttons: list[QPushButton] = []
        for st in self.scheme.stages:
            button = QPushButton(f"{st.index}  {st.name}")
            button.setCheckable(True)
            button.setToolTip(f"{st.description} (key {st.index})")
            self.group.addButton(button, st.index)
            grid.addWidget(button, st.index // 2, st.index % 2)
            self.stage_buttons.append(button)
        self.group.idClicked.connect(self._on_stage_clicked)
        # the chosen stage must be obvious at a glance, whatever the platform style
        for b in self.stage_buttons:
            b.setStyleSheet(
                "QPushButton:checked { background: #1565c0; color: white; font-weight: bold; }"
            )
        layout.addLayout(grid)
        reason_row = QHBoxLayout()
        self.reason_label = QLabel("Reason for a correction:")
        reason_row.addWidget(self.reason_label)
        self.reason = QComboBox()
        for code, words in REASONS:
            self.reason.addItem(words, code)
        reason_row.addWidget(self.reason, 1)
        layout.addLayout(reason_row)
        self.note = QLineEdit()
        self.note.setPlaceholderText("Note (optional)")
        layout.addWidget(self.note)
        buttons = QHBoxLayout()
        self.confirm_button = QPushButton("Confirm (Enter)")
        self.confirm_button.setToolTip(
            "Agree with the predicted stage, save, and go to the next case"
        )
        self.confirm_button.clicked.connect(self.confirm)
        self.save_button = QPushButton("Save \u2192 next")
        self.save_button.setToolTip("Save the chosen stage and go to the next case (Enter)")
        self.save_button.clicked.connect(self.save)
        self.undo_button = QPushButton("Undo last")
        self.undo_button.setToolTip("Withdraw the last saved label (Ctrl+Z)")
        self.undo_button.clicked.connect(self.undo)
        buttons.addWidget(self.confirm_button)
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.undo_button)
        layout.addLayout(buttons)
        self.status = QLabel(" ")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.age_hint = QLabel()
        self.age_hint.setWordWrap(True)
        self.age_hint.setFrameShape(QFrame.Shape.StyledPanel)
        self.age_hint.setMargin(6)
        self.age_hint.setVisible(False)
        layout.addWidget(self.age_hint)
        layout.addStretch(1)

    # --- state --------------------------------------------------------------------------------
    def set_case(
        self,
        case_id: str | None,
        predicted_stage: int | None = None,
        model_version: str | None = None,
    ) -> None:
        """Start reviewing `case_id` (None: nothing to review); shows any label in force."""
        self.case_id = case_id
        self.predicted_stage = predicted_stage
        self.model_version = model_version
        self.note.clear()
        self.reason.setCurrentIndex(self.reason.findData(DEFAULT_REASON))
        existing = self.sink.latest(case_id) if case_id else None
        stage = existing.decision.stage if existing else predicted_stage
        self._check(stage)
        if existing is not None:
            d = existing.decision
            self.note.setText(d.note)
            if d.reason:
                self.reason.setCurrentIndex(self.reason.findData(d.reason))
            self.status.setText(f"Saved: stage {d.stage} by {d.reviewer} ({existing.label_id}).")
        else:
            self.status.setText(" " if case_id else "Open a study to review it.")
        self._refresh()

    def set_prediction(self, predicted_stage: int | None, model_version: str | None) -> None:
        """A prediction arrived for the current case: preselect its stage if none is chosen."""
        self.predicted_stage, self.model_version = predicted_stage, model_version
        if self.selected_stage is None or (self.case_id and self.sink.latest(self.case_id) is None):
            self._check(predicted_stage)
        self._refresh()

    @property
    def selected_stage(self) -> int | None:
        sid = self.group.checkedId()
        return sid if sid >= 0 else None

    def problems(self) -> list[str]:
        """Why Save is not possible now; empty when it is (Slicer-style validation)."""
        out = []
        if self.case_id is None:
            out.append("No case is open.")
        if self.selected_stage is None:
            out.append("Choose a stage (keys 0\u20133).")
        return out

    def _check(self, stage: int | None) -> None:
        self.group.setExclusive(False)  # exclusive groups cannot be cleared otherwise
        for b in self.stage_buttons:
            b.setChecked(False)
        self.group.setExclusive(True)
        if stage is not None and 0 <= stage < len(self.stage_buttons):
            self.stage_buttons[stage].setChecked(True)

    def _on_stage_clicked(self, _index: int) -> None:
        self._refresh()
        self.changed.emit()

    def _refresh(self) -> None:
        problems = self.problems()
        self.save_button.setEnabled(not problems)
        self.save_button.setToolTip(" ".join(problems) or "Save and go to the next case (Enter)")
        self.confirm_button.setEnabled(
            self.case_id is not None and self.predicted_stage is not None
        )
        is_correction = (
            self.predicted_stage is not None
            and self.selected_stage is not None
            and self.selected_stage != self.predicted_stage
        )
        self.reason.setEnabled(is_correction)
        self.reason_label.setEnabled(is_correction)
        if is_correction and not self._saved_here():
            self.status.setText(
                f"Correction: stage {self.predicted_stage} \u2192 {self.selected_stage}. "
                "Choose a reason, then Save (Enter)."
            )
        for b in self.stage_buttons:
            b.setEnabled(self.case_id is not None)
        self.undo_button.setEnabled(True)
        self._refresh_age_hint()

    def _refresh_age_hint(self) -> None:
        sex = self.age_hint_sex()
        if sex is None or self.case_id is None:
            self.age_hint.setVisible(False)
            return
        existing = self.sink.latest(self.case_id)
        stage = existing.decision.stage if existing else self.selected_stage
        hint = self.scheme.age_hint(stage, sex) if stage is not None else None  # type: ignore[arg-type]
        if hint is None:
            self.age_hint.setText("Confirm or correct the stage to see the published mean age.")
        else:
            pending = "" if existing else " (once you confirm this stage)"
            self.age_hint.setText(f"Forensic hint{pending}: {hint.sentence()}")
        self.age_hint.setVisible(True)

    def _saved_here(self) -> bool:
        return self.case_id is not None and self.sink.latest(self.case_id) is not None

    def refresh(self) -> None:
        self._refresh()

    # --- actions ------------------------------------------------------------------------------
    def choose_stage(self, stage: int) -> None:
        """Key 0-3: choose a stage (a correction if it differs from the prediction)."""
        if self.case_id is None or not 0 <= stage < len(self.stage_buttons):
            return
        self._check(stage)
        self._refresh()
        self.changed.emit()

    def confirm(self) -> SavedLabel | None:
        """Agree with the prediction: choose its stage and save."""
        if self.predicted_stage is None:
            self.status.setText("There is no prediction to confirm; choose a stage (0\u20133).")
            return None
        self._check(self.predicted_stage)
        return self.save()

    def save(self) -> SavedLabel | None:
        """Write the decision through the sink; returns the stored label, or None."""
        stage, case_id = self.selected_stage, self.case_id
        if stage is None or case_id is None:
            self.status.setText(" ".join(self.problems()))
            return None
        reviewer = self._reviewer()
        if not reviewer:
            self.status.setText("A reviewer name is needed to save a label.")
            return None
        if self.predicted_stage is None:
            decision, reason = "label", None
        elif stage == self.predicted_stage:
            decision, reason = "confirm", None
        else:
            decision, reason = "correct", self.reason.currentData()
        box, slice_index = self._box()
        label = self.sink.save(
            ReviewDecision(
                case_id=case_id,
                stage=stage,
                reviewer=reviewer,
                decision=decision,  # type: ignore[arg-type]
                box=box,
                slice_index=slice_index,
                reason=reason,
                note=self.note.text().strip(),
                predicted_stage=self.predicted_stage,
                model_version=self.model_version,
            )
        )
        self.status.setText(f"Saved: stage {stage} by {reviewer} ({label.label_id}).")
        self._refresh()
        self.saved.emit(label)
        return label

    def undo(self) -> SavedLabel | None:
        """Withdraw the most recent label (of any case); announces it through `undone`."""
        label = self.sink.undo_last()
        if label is None:
            self.status.setText("Nothing to undo.")
            return None
        self.status.setText(f"Undone: stage {label.decision.stage} ({label.label_id}).")
        self.undone.emit(label)
        return label
