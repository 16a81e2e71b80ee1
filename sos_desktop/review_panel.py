"""`ReviewPanel`: confirm or correct the stage, give a reason and note, save, undo.

The panel gathers the expert's input and asks the `LabelService` to write one `ReviewDecision`
(to the review store, in a worker). "Saved" is shown only when the service reports the write
came back (DB-2); until then the panel says "Saving…" and ignores another save. The crop box,
slice and image come from the viewer through a callable, and the reviewer's name from a callable
that asks once (both injected). For an image that may carry burned-in identifiers (a PNG/JPEG,
a secondary capture) a checkbox asks the reviewer, once per case, to confirm there are none
(DI-3). Keys (bound by the main window): Enter saves (a confirmation when the chosen stage is the
predicted one), 0-3 choose a stage, Ctrl+Z undoes the last label. Thread affinity: GUI thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
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
from sos_desktop.error_boundary import describe
from sos_desktop.label_service import LabelService, UndoResult
from sos_desktop.label_sink import (
    REASONS,
    CaseReviewState,
    ReviewDecision,
    ReviewInputs,
    SavedLabel,
)
from sos_desktop.workers import TaskError

logger = logging.getLogger(__name__)

Box = tuple[float, float, float, float]
ReviewerProvider = Callable[[], str | None]
DEFAULT_REASON = "model_error"
BURN_IN_TEXT = "I checked: no name, ID or date is burned into the image"


InputsProvider = Callable[[], ReviewInputs]


class ReviewPanel(QWidget):
    """Signals: `saved(SavedLabel)` and `undone(SavedLabel)` once the service confirms them,
    `changed()` (input edited)."""

    saved = Signal(object)
    undone = Signal(object)
    changed = Signal()

    def __init__(
        self,
        labels: LabelService,
        reviewer: ReviewerProvider,
        inputs: InputsProvider,
        scheme: StageScheme | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.labels, self._reviewer, self._inputs = labels, reviewer, inputs
        self.scheme = scheme or get_scheme()
        self.case_id: str | None = None
        self.predicted_stage: int | None = None
        self.model_version: str | None = None
        self.age_hint_sex: Callable[[], str | None] = lambda: None
        self._build()
        labels.saved.connect(self._on_saved)
        labels.undone.connect(self._on_undone)
        labels.nothing_to_undo.connect(lambda: self.status.setText("Nothing to undo."))
        labels.looked_up.connect(self._on_looked_up)
        labels.failed.connect(self._on_failed)
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
        self.burn_in = QCheckBox(BURN_IN_TEXT)
        self.burn_in.setToolTip(
            "Images without a DICOM header, and screen captures, are kept out of retraining "
            "until a reviewer confirms they show no identifiers."
        )
        self.burn_in.setStyleSheet("QCheckBox { color: #e65100; }")
        self.burn_in.setVisible(False)
        layout.addWidget(self.burn_in)
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
        existing = self.labels.latest(case_id) if case_id else None
        stage = existing.decision.stage if existing else predicted_stage
        self._check(stage)
        if existing is not None:
            d = existing.decision
            self.note.setText(d.note)
            if d.reason:
                self.reason.setCurrentIndex(self.reason.findData(d.reason))
            self.status.setText(
                f"Saved: stage {d.stage} by {d.reviewer} (label {existing.label_id})."
            )
        else:
            self.status.setText(" " if case_id else "Open a study to review it.")
        self._show_burn_in(self.labels.state(case_id) if case_id else None)
        self._refresh()

    def set_prediction(self, predicted_stage: int | None, model_version: str | None) -> None:
        """A prediction arrived for the current case: preselect its stage if none is chosen."""
        self.predicted_stage, self.model_version = predicted_stage, model_version
        if self.selected_stage is None or not self._saved_here():
            self._check(predicted_stage)
        self._refresh()

    def _on_looked_up(self, state: object) -> None:
        """The store's answer for a case being opened: its label in force and burn-in state."""
        if not isinstance(state, CaseReviewState) or state.case_id != self.case_id:
            return
        if state.latest is not None:
            self.set_case(self.case_id, self.predicted_stage, self.model_version)
        else:
            self._show_burn_in(state)

    def _show_burn_in(self, state: CaseReviewState | None) -> None:
        """Ask once per case: the checkbox shows until an expert confirmed the image."""
        needed = state is not None and state.burn_in_reason is not None
        self.burn_in.setVisible(needed)
        if state is None or not needed:
            self.burn_in.setChecked(False)
            return
        done = state.burn_in_confirmed
        self.burn_in.setChecked(done)
        self.burn_in.setEnabled(not done)
        self.burn_in.setText(
            "Confirmed: this image shows no burned-in identifiers" if done else BURN_IN_TEXT
        )
        self.burn_in.setToolTip(f"Why: {state.burn_in_reason}.")

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
        if self.case_id is not None and self._inputs().box is None:
            out.append("Draw the SOS box on the image (Draw box, or Shift+drag).")
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
        self.undo_button.setEnabled(not self.labels.busy)
        self._refresh_age_hint()

    def _refresh_age_hint(self) -> None:
        sex = self.age_hint_sex()
        if sex is None or self.case_id is None:
            self.age_hint.setVisible(False)
            return
        existing = self.labels.latest(self.case_id)
        stage = existing.decision.stage if existing else self.selected_stage
        hint = self.scheme.age_hint(stage, sex) if stage is not None else None  # type: ignore[arg-type]
        if hint is None:
            self.age_hint.setText("Confirm or correct the stage to see the published mean age.")
        else:
            pending = "" if existing else " (once you confirm this stage)"
            self.age_hint.setText(f"Forensic hint{pending}: {hint.sentence()}")
        self.age_hint.setVisible(True)

    def _saved_here(self) -> bool:
        return self.case_id is not None and self.labels.latest(self.case_id) is not None

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

    def confirm(self) -> ReviewDecision | None:
        """Agree with the prediction: choose its stage and save."""
        if self.predicted_stage is None:
            self.status.setText("There is no prediction to confirm; choose a stage (0\u20133).")
            return None
        self._check(self.predicted_stage)
        return self.save()

    def save(self) -> ReviewDecision | None:
        """Ask the service to store the decision; returns it (None if nothing was asked).

        `saved` follows once the store has acknowledged it; a save asked while another is on
        its way is ignored, so a double Enter cannot label the next case by accident.
        """
        stage, case_id = self.selected_stage, self.case_id
        if stage is None or case_id is None:
            self.status.setText(" ".join(self.problems()))
            return None
        if self.labels.busy:
            self.status.setText("Saving\u2026 (wait for the previous label to be stored)")
            return None
        reviewer = self._reviewer()
        if not reviewer:
            self.status.setText("A reviewer name is needed to save a label.")
            return None
        decision = self._decision(case_id, stage, reviewer)
        if self.labels.save(decision) is None:
            return None
        self.status.setText(f"Saving stage {stage}\u2026")
        self._refresh()
        return decision

    def _decision(self, case_id: str, stage: int, reviewer: str) -> ReviewDecision:
        if self.predicted_stage is None:
            kind, reason = "label", None
        elif stage == self.predicted_stage:
            kind, reason = "confirm", None
        else:
            kind, reason = "correct", self.reason.currentData()
        got = self._inputs()
        return ReviewDecision(
            case_id=case_id,
            stage=stage,
            reviewer=reviewer,
            decision=kind,  # type: ignore[arg-type]
            box=got.box,
            slice_index=got.slice_index,
            reason=reason,
            note=self.note.text().strip(),
            predicted_stage=self.predicted_stage,
            model_version=self.model_version,
            box_source=got.box_source,
            image=got.image,
            prediction=got.prediction,
            no_burned_in=self.burn_in.isChecked() and self.burn_in.isEnabled(),
        )

    def _on_saved(self, label: object) -> None:
        if not isinstance(label, SavedLabel):
            return
        d = label.decision
        if d.case_id == self.case_id:
            self.status.setText(f"Saved: stage {d.stage} by {d.reviewer} (label {label.label_id}).")
            if d.no_burned_in:
                self._show_burn_in(self.labels.state(d.case_id))
        self._refresh()
        self.saved.emit(label)

    def undo(self) -> None:
        """Withdraw the most recent label (of any case); `undone` follows once it is stored."""
        if self.labels.busy:
            self.status.setText("Saving\u2026 (wait for the previous label to be stored)")
            return
        if self.labels.undo() is not None:
            self.status.setText("Undoing the last label\u2026")

    def _on_undone(self, result: object) -> None:
        if not isinstance(result, UndoResult):
            return
        label = result.undone
        if label.decision.case_id == self.case_id:  # show what is in force now
            self.set_case(self.case_id, self.predicted_stage, self.model_version)
        self.status.setText(
            f"Undone: stage {label.decision.stage} (label {label.label_id}); nothing was deleted."
        )
        self._refresh()
        self.undone.emit(label)

    def _on_failed(self, title: str, error: object) -> None:
        if isinstance(error, TaskError):
            self.status.setText(f"{title}: {describe(error.exception)[0]}")
            self._refresh()
