"""ImageViewer: window/level, presets, slices, overlay controls, boxes, cursor read-out."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QPointF, Qt

from sos_desktop.app import configure_pyqtgraph
from sos_desktop.viewer import ImageViewer
from tests.sos_desktop.viewer_gestures import drag, is_fitted


@pytest.fixture
def viewer(qtbot: Any) -> ImageViewer:
    configure_pyqtgraph()
    v = ImageViewer()
    qtbot.addWidget(v)
    v.resize(700, 500)
    v.show()
    qtbot.waitExposed(v)
    return v


def _ramp(rows: int = 40, cols: int = 60) -> np.ndarray:
    return (np.arange(rows)[:, None] * 10 + np.arange(cols)[None, :]).astype(np.int16)


def test_row_major_is_configured_once() -> None:
    configure_pyqtgraph()
    assert pg.getConfigOption("imageAxisOrder") == "row-major"


def test_empty_state_invites_to_open(viewer: ImageViewer, qtbot: Any) -> None:
    assert viewer.stack.currentIndex() == 0
    assert "Open a study" in viewer.placeholder.text()
    with qtbot.waitSignal(viewer.open_folder_requested, timeout=500):
        viewer.stack.widget(0).open_folder.click()


def test_image_pixels_window_and_cursor_readout(viewer: ImageViewer) -> None:
    img = _ramp()
    viewer.show_image(img, (0.2, 0.1), (100.0, 50.0), hu=True)
    assert viewer.stack.currentIndex() == 1
    assert viewer.window == (100.0, 50.0)
    assert viewer.image_item.getLevels() == pytest.approx((75.0, 125.0))
    assert viewer.scale_bar.isVisible()
    assert viewer.scale_bar.text.textItem.toPlainText().endswith("mm")
    text = viewer.describe_pixel(3, 7)
    assert "row 3, col 7" in text
    assert "value 37 HU" in text
    assert "x 0.7 mm, y 0.6 mm" in text
    viewer.show_image(img, None, None, hu=False)
    assert not viewer.scale_bar.isVisible()
    assert "mm" not in viewer.describe_pixel(3, 7)


def test_non_square_pixels_keep_their_true_shape(viewer: ImageViewer) -> None:
    viewer.show_image(_ramp(40, 40), (0.4, 0.1), None, hu=False)
    p0 = viewer.view.mapViewToDevice(QPointF(0, 0))
    px = viewer.view.mapViewToDevice(QPointF(1, 0))
    py = viewer.view.mapViewToDevice(QPointF(0, 1))
    # one row (0.4 mm) is drawn four times as tall as one column (0.1 mm) is wide
    assert abs(py.y() - p0.y()) / abs(px.x() - p0.x()) == pytest.approx(4.0, rel=0.02)


def test_presets_and_right_drag_window_level(viewer: ImageViewer) -> None:
    viewer.show_image(_ramp(), None, (50.0, 100.0), hu=True)
    viewer.apply_preset("bone")
    assert viewer.window == (500.0, 2000.0)
    viewer.apply_preset("soft tissue")
    assert viewer.window == (40.0, 400.0)
    viewer.apply_preset("auto")
    lo, hi = np.percentile(_ramp(), (0.5, 99.5))
    assert viewer.window == pytest.approx(((lo + hi) / 2, hi - lo))
    before = viewer.window
    drag = SimpleNamespace(
        button=lambda: Qt.MouseButton.RightButton,
        accept=lambda: None,
        screenPos=lambda: QPointF(40, 10),
        lastScreenPos=lambda: QPointF(0, 30),
    )
    viewer.view.mouseDragEvent(drag)
    centre, width = viewer.window
    assert width > before[1]  # dragging right widens the window
    assert centre > before[0]  # dragging up raises the level
    # CT presets make no sense outside HU: disabled, and "bone" falls back to auto
    viewer.show_image(_ramp(), None, (50.0, 100.0), hu=False)
    assert not viewer.preset_actions["bone"].isEnabled()
    viewer.apply_preset("bone")
    assert viewer.window == pytest.approx(((lo + hi) / 2, hi - lo))


def _volume_getter(n: int = 9) -> Any:
    vol = np.stack([_ramp() + 1000 * k for k in range(n)])
    return vol, lambda i: (vol[i], (0.5, 0.5))


def test_volume_slider_wheel_and_model_marker(viewer: ImageViewer, qtbot: Any) -> None:
    vol, getter = _volume_getter()
    viewer.show_volume(9, 4, getter, None, hu=True)
    assert viewer.slice_slider.isVisible()
    assert viewer.current_slice == 4
    np.testing.assert_array_equal(viewer.pixels, vol[4])
    wheel = SimpleNamespace(
        modifiers=lambda: Qt.KeyboardModifier.NoModifier, accept=lambda: None, delta=lambda: -120
    )
    with qtbot.waitSignal(viewer.slice_changed, timeout=500) as blocker:
        viewer.view.wheelEvent(wheel)
    assert blocker.args == [5]
    np.testing.assert_array_equal(viewer.pixels, vol[5])
    viewer.set_model_slice(2)
    assert viewer.slice_slider.marker == 2
    assert "(model: 3)" in viewer.slice_label.text()
    viewer.go_to_model_slice()
    assert viewer.current_slice == 2


def test_overlay_toggle_opacity_colormap_and_slice(viewer: ImageViewer) -> None:
    vol, getter = _volume_getter()
    viewer.show_volume(9, 4, getter, None, hu=True)
    cam = np.zeros((40, 60), np.float32)
    cam[10:20, 10:30] = 1.0
    viewer.set_overlay(cam, slice_index=4)
    assert viewer.overlay_shown()
    viewer.set_overlay_opacity(0.8)
    assert viewer.overlay_item.opacity() == pytest.approx(0.8)
    lut_before = viewer.overlay_lut_array.copy()
    viewer.set_overlay_colormap("viridis")
    assert not np.array_equal(lut_before, viewer.overlay_lut_array)
    assert viewer.overlay_lut_array[0, 3] == 0  # no attention: fully transparent
    viewer.set_overlay_visible(False)
    assert not viewer.overlay_shown()
    viewer.set_overlay_visible(True)
    viewer.set_slice(5)  # the map belongs to slice 4 only
    assert not viewer.overlay_shown()
    viewer.set_slice(4)
    assert viewer.overlay_shown()
    viewer.set_overlay(np.zeros((3, 3), np.float32), slice_index=4)  # wrong shape: not drawn
    assert not viewer.overlay_shown()


def test_crop_box_starts_on_the_suggested_box_and_can_be_reset(viewer: ImageViewer) -> None:
    viewer.show_image(_ramp(), None, None, hu=False)
    viewer.set_suggested_box((10.0, 5.0, 30.0, 25.0))
    assert viewer.suggested_box_shown == (10.0, 5.0, 30.0, 25.0)
    assert viewer.crop_box() == pytest.approx((10.0, 5.0, 30.0, 25.0))
    viewer.set_crop_box((12.0, 6.0, 40.0, 30.0))
    assert viewer.crop_box() == pytest.approx((12.0, 6.0, 40.0, 30.0))
    viewer.reset_crop_box()
    assert viewer.crop_box() == pytest.approx((10.0, 5.0, 30.0, 25.0))
    viewer.set_suggested_box(None)  # no suggestion: no box is made up in its place
    assert viewer.crop_box() is None
    assert not viewer.reset_box_button.isEnabled()


# --- fit ------------------------------------------------------------------------------------------
def test_an_image_opens_fitted_and_stays_fitted_until_the_user_zooms(
    viewer: ImageViewer, qtbot: Any
) -> None:
    viewer.show_image(_ramp(40, 160), (0.5, 0.25), None, hu=False)
    assert is_fitted(viewer)
    img = viewer.image_item.sceneBoundingRect()
    assert img.width() / img.height() == pytest.approx(2.0, rel=0.01)  # 40 mm wide, 20 mm tall
    # the frame marks the image's edge, so a dark border does not read as a cropped view
    assert viewer.frame_item.isVisible()
    assert viewer.frame_item.rect().getRect() == (0.0, 0.0, 160.0, 40.0)
    for width, height in ((600, 800), (1100, 380), (700, 500)):  # tall, wide, back
        viewer.resize(width, height)
        qtbot.waitUntil(lambda w=width, h=height: viewer.size().toTuple() == (w, h), timeout=1000)
        qtbot.wait(30)  # the layouts inside settle
        assert is_fitted(viewer), (width, height)
    viewer.view.scaleBy((0.5, 0.5))  # the user zooms in: a resize keeps their view
    viewer.resize(600, 600)
    qtbot.wait(30)
    assert not is_fitted(viewer)
    viewer.fit()
    assert is_fitted(viewer)
    viewer.view.scaleBy((0.5, 0.5))
    viewer.show_image(_ramp(), None, None, hu=False)  # the next case opens fitted again
    assert is_fitted(viewer)
    assert viewer.frame_item.rect().getRect() == (0.0, 0.0, 60.0, 40.0)
    viewer.clear()
    assert not viewer.frame_item.isVisible()


# --- boxes ----------------------------------------------------------------------------------------
def _rois(viewer: ImageViewer) -> list[pg.ROI]:
    return [item for item in viewer.view.addedItems if isinstance(item, pg.ROI)]


def test_no_box_is_made_up_before_the_model_suggests_one(viewer: ImageViewer) -> None:
    viewer.show_image(_ramp(), None, None, hu=False)
    assert viewer.crop_box() is None
    assert _rois(viewer) == []  # nothing drawn that could pass for a suggestion
    assert viewer.suggested_box_shown is None
    assert not viewer.reset_box_button.isEnabled()
    assert viewer.draw_box_button.isEnabled()
    viewer.set_suggested_box((10.0, 5.0, 30.0, 25.0))  # the prediction arrives
    assert viewer.suggested_box_shown == (10.0, 5.0, 30.0, 25.0)
    assert viewer.crop_box() == pytest.approx((10.0, 5.0, 30.0, 25.0))
    assert len(_rois(viewer)) == 1
    assert viewer.reset_box_button.isEnabled()
    viewer.clear_annotations()  # the next case: nothing of this one stays
    assert viewer.crop_box() is None
    assert viewer.suggested_box_shown is None
    assert _rois(viewer) == []


def test_the_expert_draws_the_box_and_a_later_suggestion_keeps_it(
    viewer: ImageViewer, qtbot: Any
) -> None:
    viewer.show_image(_ramp(), None, None, hu=False)
    before = viewer.view.viewRange()
    viewer.draw_box_button.click()
    assert viewer.draw_box_button.isChecked()
    with qtbot.waitSignal(viewer.crop_box_changed, timeout=1000) as changed:
        drag(viewer, qtbot, (40.0, 30.0), (12.0, 6.0))  # any direction
    assert changed.args[0] == pytest.approx((12.0, 6.0, 40.0, 30.0), abs=0.6)
    assert viewer.crop_box() == pytest.approx((12.0, 6.0, 40.0, 30.0), abs=0.6)
    assert viewer.view.viewRange() == before  # drawing did not pan the image
    assert not viewer.draw_box_button.isChecked()  # one box per press
    drawn = viewer.crop_box()
    viewer.set_suggested_box((10.0, 5.0, 30.0, 25.0))
    assert viewer.suggested_box_shown == (10.0, 5.0, 30.0, 25.0)
    assert viewer.crop_box() == drawn  # the expert's box stands
    viewer.reset_crop_box()  # ... until they ask for the suggestion
    assert viewer.crop_box() == pytest.approx((10.0, 5.0, 30.0, 25.0))
    # Shift+drag draws at any time; a plain drag pans and leaves the box alone
    drag(viewer, qtbot, (5.0, 5.0), (25.0, 35.0), Qt.KeyboardModifier.ShiftModifier)
    assert viewer.crop_box() == pytest.approx((5.0, 5.0, 25.0, 35.0), abs=0.6)
    drag(viewer, qtbot, (50.0, 2.0), (55.0, 8.0))
    assert viewer.crop_box() == pytest.approx((5.0, 5.0, 25.0, 35.0), abs=0.6)
    assert viewer.view.viewRange() != before
