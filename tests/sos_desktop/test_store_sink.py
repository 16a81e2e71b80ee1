"""StoreLabelSink: the panel's decisions as rows of a real review store, read back through the
store's own API (valid and invalid inputs first; the GUI flows are in test_review_store_flow)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from sos_core.errors import LabelRejected, ParameterError
from sos_core.imaging import open_study
from sos_core.imaging.study import Study
from sos_core.inference.prediction import Prediction
from sos_core.review import ReviewStore
from sos_desktop.label_sink import CaseImage, LabelSink, ReviewDecision
from sos_desktop.store_sink import StoreLabelSink
from tests.sos_desktop.study_fixtures import write_ct_series

VERSION = "v7+0123abcd"


@pytest.fixture
def sink(tmp_path: Path) -> StoreLabelSink:
    s = StoreLabelSink.open(tmp_path / "store")
    yield s
    s.close()


@pytest.fixture
def png_study(png_path: Path) -> Study:
    return open_study(png_path)


def _prediction(stage: int = 1, slice_index: int | None = None) -> Prediction:
    probs = [0.1, 0.1, 0.1, 0.1]
    probs[stage] = 0.7
    return Prediction(stage, f"stage {stage}", tuple(probs), VERSION, "cpu", box=(10, 10, 40, 30),
                      slice_index=slice_index)  # fmt: skip


def _decision(study: Study, stage: int = 1, **kw: object) -> ReviewDecision:
    base: dict[str, object] = {
        "case_id": "case-a",
        "stage": stage,
        "reviewer": "Dr S",
        "decision": "confirm",
        "box": (20.0, 15.0, 60.0, 45.0),
        "predicted_stage": 1,
        "model_version": VERSION,
        "image": CaseImage(study, study.pixels),
        "prediction": _prediction(),
    }
    base.update(kw)
    return ReviewDecision(**base)  # type: ignore[arg-type]


def _store_case(store: ReviewStore) -> str:
    (case,) = store.cases()
    return case.case_id


def test_a_confirmation_is_stored_with_its_image_prediction_reviewer_and_box(
    sink: StoreLabelSink, png_study: Study
) -> None:
    assert isinstance(sink, LabelSink)
    saved = sink.save(_decision(png_study, box_source="suggested"))
    store = sink.store
    case_id = _store_case(store)
    np.testing.assert_array_equal(store.pixels(case_id), png_study.pixels)
    (pred,) = store.predictions_for_case(case_id)
    assert (pred.model_version, pred.stage) == (VERSION, 1)
    (label,) = store.labels_for_case(case_id)
    assert (label.stage, label.reviewer, label.reason, label.box_source) == (
        1,
        "Dr S",
        "confirmed",
        "suggested",
    )
    assert label.box == (20.0, 15.0, 60.0, 45.0)
    assert (label.prediction_id, label.model_version, label.supersedes) == (pred.id, VERSION, None)
    assert saved.label_id == str(label.id)
    latest = sink.latest("case-a")
    assert latest is not None
    assert (latest.label_id, latest.decision.stage, latest.decision.box) == (
        saved.label_id,
        1,
        label.box,
    )


def test_a_correction_supersedes_and_undo_appends_a_restoring_row(
    sink: StoreLabelSink, png_study: Study
) -> None:
    first = sink.save(_decision(png_study))
    second = sink.save(
        _decision(png_study, stage=3, decision="correct", reason="artefact", note="blur",
                  box=(5.0, 5.0, 50.0, 40.0))
    )  # fmt: skip
    store = sink.store
    case_id = _store_case(store)
    rows = store.labels_for_case(case_id)
    assert [r.id for r in rows] == [int(first.label_id), int(second.label_id)]
    assert rows[1].supersedes == rows[0].id
    assert (rows[1].stage, rows[1].reason, rows[1].note) == (3, "artefact", "blur")
    assert len(store.predictions_for_case(case_id)) == 1  # the same prediction, stored once

    undone = sink.undo_last()
    assert undone is not None
    assert undone.label_id == second.label_id
    rows = store.labels_for_case(case_id)
    assert len(rows) == 3  # nothing deleted: a third row withdraws the correction
    restored = rows[2]
    assert restored.supersedes == rows[1].id
    assert (restored.stage, restored.box, restored.reason) == (1, rows[0].box, "confirmed")
    assert store.current_label(case_id) == restored
    assert [lab.id for lab in store.chain(restored.id)] == [rows[2].id, rows[1].id, rows[0].id]
    latest = sink.latest("case-a")
    assert latest is not None
    assert latest.decision.stage == 1

    # the first label has nothing before it: a retraction row withdraws it, nothing is deleted
    assert sink.undo_last() is not None
    assert len(store.labels_for_case(case_id)) == 3
    assert [r.label_id for r in store.retractions_for_case(case_id)] == [restored.id]
    assert store.current_label(case_id) is None
    assert sink.latest("case-a") is None


def test_invalid_decisions_are_refused_and_store_nothing(
    sink: StoreLabelSink, png_study: Study
) -> None:
    with pytest.raises(ParameterError):
        sink.save(_decision(png_study, image=None))
    with pytest.raises(LabelRejected, match="Draw the SOS box"):
        sink.save(_decision(png_study, box=None))
    with pytest.raises(LabelRejected, match="outside the image"):
        sink.save(_decision(png_study, box=(500.0, 500.0, 600.0, 600.0)))
    with pytest.raises(LabelRejected):
        sink.save(_decision(png_study, reviewer="   "))
    assert all(not sink.store.labels_for_case(c.case_id) for c in sink.store.cases())
    assert sink.undo_last() is None
    # a box dragged past the edge is clipped to the image (120 rows x 160 columns)
    sink.save(_decision(png_study, box=(-10.0, 100.0, 50.0, 140.0)))
    (label,) = sink.store.labels_for_case(_store_case(sink.store))
    assert label.box == (0.0, 100.0, 50.0, 120.0)


def test_a_png_is_held_until_the_reviewer_confirms_no_burned_in_identifiers(
    sink: StoreLabelSink, png_study: Study
) -> None:
    image = CaseImage(png_study, png_study.pixels)
    state = sink.lookup("case-a", image)
    assert state.burn_in_reason is not None
    assert state.needs_burn_in_confirmation
    sink.save(_decision(png_study))
    assert sink.store.queue().held_cases == 1  # labelled, but kept out of retraining
    assert len(sink.store.queue()) == 0
    sink.save(_decision(png_study, stage=2, decision="correct", no_burned_in=True))
    case_id = _store_case(sink.store)
    assert sink.store.case(case_id).burn_in == "confirmed"
    assert [i.case_id for i in sink.store.queue().items] == [case_id]
    confirmations = [
        e for e in sink.store.audit_entries(f"case:{case_id}") if "burn_in" in e.action
    ]
    assert [e.actor for e in confirmations] == ["Dr S"]
    assert not sink.lookup("case-a", image).needs_burn_in_confirmation


def test_a_later_session_finds_the_label_by_the_image(tmp_path: Path, png_study: Study) -> None:
    first = StoreLabelSink.open(tmp_path / "store")
    saved = first.save(_decision(png_study, stage=2, decision="correct", reason="ambiguous"))
    first.close()
    again = StoreLabelSink.open(tmp_path / "store")
    try:
        state = again.lookup("case-other-id", CaseImage(png_study, png_study.pixels))
        assert state.latest is not None
        assert state.latest.label_id == saved.label_id
        assert (state.latest.decision.stage, state.latest.decision.reason) == (2, "ambiguous")
        assert state.latest.decision.decision == "correct"
        assert again.undo_last() is None  # undo covers this session's labels only
    finally:
        again.close()


def test_a_volume_is_stored_as_the_reviewed_sagittal_slice(
    sink: StoreLabelSink, tmp_path: Path
) -> None:
    from sos_core.imaging.reformat import sagittal_slice

    study = open_study(write_ct_series(tmp_path / "ct", n=12, rows=24, cols=20))
    shown = sagittal_slice(study, 9)
    image = CaseImage(study, shown.pixels, (1.0, 0.5), slice_index=9)
    assert sink.lookup("case-v", image).burn_in_reason is None  # a CT header: nothing held
    on_other_slice = dataclasses.replace(_prediction(slice_index=10))
    sink.save(
        _decision(study, case_id="case-v", image=image, slice_index=9, box=(1.0, 1.0, 9.0, 9.0),
                  prediction=on_other_slice)
    )  # fmt: skip
    case_id = _store_case(sink.store)
    case = sink.store.case(case_id)
    assert case.shape == shown.pixels.shape
    assert case.pixel_spacing == (1.0, 0.5)
    assert case.burn_in == "clear"
    np.testing.assert_array_equal(sink.store.pixels(case_id), shown.pixels)
    (label,) = sink.store.labels_for_case(case_id)
    # the prediction was made on another slice: the label names the model, not that row
    assert (label.prediction_id, label.model_version) == (None, VERSION)
    assert sink.store.predictions_for_case(case_id) == []
