"""How a case first looks in the window: fitted, the manifest's pixel spacing for sample PNGs,
and no SOS box until the model suggests one (the expert can still draw it and save)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyqtgraph as pg
import pytest

from resources import resource_path
from sos_core.review import ReviewStore
from sos_desktop.main_window import MainWindow
from sos_desktop.prediction_service import NO_MODEL_SENTENCE
from tests.sos_desktop.doubles import StubPredictor
from tests.sos_desktop.viewer_gestures import drag, is_fitted

SAMPLE = resource_path("samples")


def _open(qtbot: Any, win: MainWindow, path: Path) -> None:
    with qtbot.waitSignal(win.case_shown, timeout=20000):
        win.open_path(path)


def _manifest_spacing(rel: str) -> tuple[float, float]:
    for line in (SAMPLE / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["file"] == rel:
            return float(row["pixel_spacing"][0]), float(row["pixel_spacing"][1])
    raise AssertionError(f"{rel} is not in the sample manifest")


def _rois(win: MainWindow) -> list[pg.ROI]:
    return [item for item in win.viewer.view.addedItems if isinstance(item, pg.ROI)]


def test_the_bundled_sample_opens_fitted_with_its_manifest_spacing(
    qtbot: Any, make_window: Any
) -> None:
    win = make_window()
    _open(qtbot, win, SAMPLE)  # the README's first command: the sample as a worklist
    case = win.case
    assert case is not None
    rel = case.path.relative_to(SAMPLE).as_posix()
    assert case.path.suffix == ".png"  # the first case by priority is a sample PNG
    spacing = _manifest_spacing(rel)
    assert win.viewer.spacing == pytest.approx(spacing)
    assert win.viewer.scale_bar.isVisible()
    assert "spacing unknown" not in win.status_text.text()  # (later messages may replace it)
    assert " mm, y " in win.viewer.describe_pixel(10, 20)
    assert is_fitted(win.viewer)
    win.resize(win.width() - 300, win.height() - 150)  # a smaller window, no zoom yet
    qtbot.wait(50)
    assert is_fitted(win.viewer)


def test_a_sample_png_opened_alone_finds_the_manifest_above_it(
    qtbot: Any, make_window: Any
) -> None:
    win = make_window()
    rel = "cephs/case_000001.png"
    _open(qtbot, win, SAMPLE / rel)
    assert win.worklist.entries() == []  # one study, not a worklist
    assert win.viewer.spacing == pytest.approx(_manifest_spacing(rel))
    assert win.viewer.scale_bar.isVisible()


def test_no_box_before_a_prediction_then_the_suggested_box(
    qtbot: Any, make_window: Any, png_path: Path
) -> None:
    win = make_window()  # no model: no prediction will ever come
    _open(qtbot, win, png_path)
    qtbot.waitUntil(lambda: win.prediction_panel.message.text() == NO_MODEL_SENTENCE)
    assert win.viewer.crop_box() is None
    assert _rois(win) == []
    assert win.viewer.suggested_box_shown is None
    stub = StubPredictor(stage=2)
    win2 = make_window(stub)
    _open(qtbot, win2, png_path)
    qtbot.waitUntil(lambda: win2.result is not None, timeout=10000)
    box = win2.result.prediction.box
    assert win2.viewer.suggested_box_shown == box
    assert win2.viewer.crop_box() == pytest.approx(box)


def test_the_previous_case_boxes_do_not_show_on_the_next_preview(
    qtbot: Any, make_window: Any, png_path: Path, ct_series: Path
) -> None:
    """Uses the StubPredictor: it answers at once, so the PNG has a box before the series opens."""
    win = make_window(StubPredictor(stage=1))
    _open(qtbot, win, png_path)
    qtbot.waitUntil(lambda: win.result is not None, timeout=10000)
    assert win.viewer.crop_box() is not None
    with qtbot.waitSignal(win.opener.preview_ready, timeout=20000):
        win.open_path(ct_series)
    assert win.case is None  # the mid-sagittal preview, before the whole volume
    assert win.viewer.pixels is not None
    assert win.viewer.crop_box() is None
    assert win.viewer.suggested_box_shown is None
    assert not win.viewer.overlay_shown()
    qtbot.waitUntil(lambda: win.result is not None, timeout=20000)  # then its own box
    assert win.viewer.crop_box() is not None


def test_without_a_model_the_expert_draws_the_box_and_saves(
    qtbot: Any, make_window: Any, png_path: Path, settings: Any, tmp_path: Path
) -> None:
    settings.reviewer = "Dr Draw"
    win = make_window()
    qtbot.waitUntil(lambda: win.sink is not None, timeout=10000)
    _open(qtbot, win, png_path)
    win.viewer.draw_box_button.click()
    drag(win.viewer, qtbot, (30.0, 20.0), (90.0, 70.0))
    drawn = win.viewer.crop_box()
    assert drawn == pytest.approx((30.0, 20.0, 90.0, 70.0), abs=0.6)
    win.review_panel.choose_stage(1)
    with qtbot.waitSignal(win.review_panel.saved, timeout=10000) as blocker:
        win.review_panel.save()
    assert blocker.args[0].decision.decision == "label"
    with ReviewStore.open(tmp_path / "store") as store:
        (case,) = store.cases()
        (label,) = store.labels_for_case(case.case_id)
        assert label.stage == 1
        assert label.box == pytest.approx(drawn)
        assert label.box_source == "expert"
