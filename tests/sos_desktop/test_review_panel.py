"""ReviewPanel: validation, decisions written through the label service, and the age hint.

The panel writes through a `LabelService` over the in-memory sink here; the review store behind
the same service is exercised in test_store_sink.py and test_review_store_flow.py.
"""

from __future__ import annotations

from typing import Any

from sos_desktop.label_service import LabelService
from sos_desktop.label_sink import CaseReviewState, InMemoryLabelSink, ReviewInputs, SavedLabel
from sos_desktop.review_panel import ReviewPanel

BOX = (1.0, 2.0, 30.0, 40.0)


def _panel(qtbot: Any, sink: InMemoryLabelSink, sex: str | None = None) -> ReviewPanel:
    labels = LabelService(sink)
    panel = ReviewPanel(labels, lambda: "Dr P", lambda: ReviewInputs(BOX, 7, suggested=BOX))
    labels.setParent(panel)
    panel.age_hint_sex = lambda: sex
    qtbot.addWidget(panel)
    panel.show()
    return panel


def _save(qtbot: Any, panel: ReviewPanel, confirm: bool = False) -> SavedLabel:
    with qtbot.waitSignal(panel.saved, timeout=5000) as blocker:
        assert (panel.confirm() if confirm else panel.save()) is not None
    label = blocker.args[0]
    assert isinstance(label, SavedLabel)
    return label


def test_save_needs_a_case_and_a_stage(qtbot: Any) -> None:
    sink = InMemoryLabelSink()
    panel = _panel(qtbot, sink)
    assert not panel.save_button.isEnabled()
    assert panel.save() is None
    panel.set_case("case-1")  # no prediction: the expert must choose
    assert panel.problems() == ["Choose a stage (keys 0\u20133)."]
    assert not panel.confirm_button.isEnabled()
    panel.choose_stage(2)
    label = _save(qtbot, panel)
    d = label.decision
    assert (d.decision, d.stage, d.reason, d.box, d.slice_index, d.box_source) == (
        "label",
        2,
        None,
        BOX,
        7,
        "suggested",  # the expert left the model's box where it was
    )
    assert sink.labels() == [label]  # what the panel announced is what the sink holds
    assert panel.status.text().startswith("Saved: stage 2 by Dr P")


def test_saved_is_shown_only_after_the_sink_returned(qtbot: Any) -> None:
    sink = InMemoryLabelSink()
    panel = _panel(qtbot, sink)
    panel.set_case("case-9", predicted_stage=1, model_version="v1")
    with qtbot.waitSignal(panel.saved, timeout=5000):
        panel.confirm()
        assert panel.status.text().startswith("Saving")  # asked, not yet acknowledged
        assert panel.save() is None  # a second Enter while saving is ignored
    assert len(sink.labels()) == 1
    assert panel.status.text().startswith("Saved")


def test_correction_carries_reason_and_note(qtbot: Any) -> None:
    sink = InMemoryLabelSink()
    panel = _panel(qtbot, sink)
    panel.set_case("case-2", predicted_stage=1, model_version="v1")
    assert panel.selected_stage == 1
    assert not panel.reason.isEnabled()  # confirming needs no reason
    panel.choose_stage(0)
    assert panel.reason.isEnabled()
    panel.reason.setCurrentIndex(panel.reason.findData("artefact"))
    panel.note.setText("  motion blur  ")
    d = _save(qtbot, panel).decision
    assert (d.decision, d.stage, d.reason, d.note, d.predicted_stage, d.model_version) == (
        "correct",
        0,
        "artefact",
        "motion blur",
        1,
        "v1",
    )


def test_burn_in_checkbox_is_asked_only_for_held_images(qtbot: Any) -> None:
    sink = InMemoryLabelSink()
    panel = _panel(qtbot, sink)
    panel.set_case("case-4", predicted_stage=1, model_version="v1")
    assert panel.burn_in.isHidden()
    held = CaseReviewState("case-4", None, "raster image without a header", False)
    panel.labels.looked_up.emit(held)  # what the service announces after a store lookup
    assert not panel.burn_in.isHidden()
    assert panel.burn_in.isEnabled()
    assert not panel.burn_in.isChecked()
    panel.burn_in.setChecked(True)
    assert _save(qtbot, panel, confirm=True).decision.no_burned_in
    done = CaseReviewState("case-4", None, "raster image without a header", True)
    panel.labels.looked_up.emit(done)
    assert panel.burn_in.isChecked()
    assert not panel.burn_in.isEnabled()  # asked once: a confirmed case is not asked again


def test_forensic_age_hint_names_its_study(qtbot: Any) -> None:
    sink = InMemoryLabelSink()
    panel = _panel(qtbot, sink, sex=None)
    panel.set_case("case-3", predicted_stage=2, model_version="v1")
    assert panel.age_hint.isHidden()  # off in settings
    panel.age_hint_sex = lambda: "female"
    panel.refresh()
    text = panel.age_hint.text()
    assert "once you confirm" in text
    assert "13.25 years" in text
    _save(qtbot, panel, confirm=True)
    text = panel.age_hint.text()
    assert "once you confirm" not in text
    assert "13.25 years" in text
    assert "PMC5565182" in text
    assert "741" in text
    assert "Populations differ" in text
