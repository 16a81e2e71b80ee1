"""ReviewPanel: validation, decisions written to the sink, and the forensic age hint."""

from __future__ import annotations

from typing import Any

from sos_desktop.label_sink import InMemoryLabelSink
from sos_desktop.review_panel import ReviewPanel


def _panel(qtbot: Any, sink: InMemoryLabelSink, sex: str | None = None) -> ReviewPanel:
    panel = ReviewPanel(sink, lambda: "Dr P", lambda: ((1.0, 2.0, 30.0, 40.0), 7))
    panel.age_hint_sex = lambda: sex
    qtbot.addWidget(panel)
    panel.show()
    return panel


def test_save_needs_a_case_and_a_stage(qtbot: Any) -> None:
    sink = InMemoryLabelSink()
    panel = _panel(qtbot, sink)
    assert not panel.save_button.isEnabled()
    assert panel.save() is None
    panel.set_case("case-1")  # no prediction: the expert must choose
    assert panel.problems() == ["Choose a stage (keys 0\u20133)."]
    assert not panel.confirm_button.isEnabled()
    panel.choose_stage(2)
    label = panel.save()
    assert label is not None
    d = label.decision
    assert (d.decision, d.stage, d.reason, d.box, d.slice_index) == (
        "label",
        2,
        None,
        (1.0, 2.0, 30.0, 40.0),
        7,
    )


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
    d = panel.save().decision  # type: ignore[union-attr]
    assert (d.decision, d.stage, d.reason, d.note, d.predicted_stage, d.model_version) == (
        "correct",
        0,
        "artefact",
        "motion blur",
        1,
        "v1",
    )


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
    panel.confirm()
    text = panel.age_hint.text()
    assert "once you confirm" not in text
    assert "13.25 years" in text
    assert "PMC5565182" in text
    assert "741" in text
    assert "Populations differ" in text
