"""The GUI thread stays responsive while a CBCT series loads and a real model predicts it, and
while the real model predicts a large radiograph (issue: a heartbeat never stalls > 100 ms)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from PySide6.QtCore import QTimer

from sos_core.imaging.study import Study
from tests.sos_desktop.study_fixtures import write_ct_series


class Heartbeat:
    """A 10 ms QTimer on the GUI thread; the largest gap between ticks is the longest stall."""

    def __init__(self, qtbot: Any) -> None:
        self.ticks: list[float] = []
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))
        self.timer.start()
        qtbot.waitUntil(lambda: len(self.ticks) >= 3, timeout=2000)

    def stop(self, qtbot: Any) -> float:
        n = len(self.ticks)
        qtbot.waitUntil(lambda: len(self.ticks) >= n + 5, timeout=2000)
        self.timer.stop()
        return float(np.diff(self.ticks).max())


def test_heartbeat_never_stalls_while_a_cbct_series_loads_and_is_predicted(
    qtbot: Any, make_window: Any, tmp_path: Path, trained_student: Path
) -> None:
    series = write_ct_series(tmp_path / "cbct", n=96, rows=128, cols=128)
    win = make_window(model_dir=trained_student)
    beat = Heartbeat(qtbot)
    with qtbot.waitSignal(win.case_shown, timeout=60000):
        win.open_path(series)
    qtbot.waitUntil(lambda: win.result is not None, timeout=30000)  # a real prediction
    win.step_slice(1)  # scrolling is GUI-thread work too
    gap = beat.stop(qtbot)
    assert win.viewer.slice_slider.maximum() == 127
    assert win.prediction_panel.result is win.result
    print(f"max heartbeat gap {gap * 1000:.1f} ms over {len(beat.ticks)} ticks")
    assert gap < 0.100, f"GUI thread stalled {gap * 1000:.0f} ms"


def test_heartbeat_never_stalls_during_a_real_prediction(
    qtbot: Any, make_window: Any, tmp_path: Path, trained_student: Path
) -> None:
    rng = np.random.default_rng(3)
    big = tmp_path / "large_ceph.png"
    Image.fromarray((rng.random((1536, 1792)) * 4000).astype(np.uint16)).save(big)
    win = make_window(model_dir=trained_student)
    with qtbot.waitSignal(win.case_shown, timeout=60000):
        win.open_path(big)
    qtbot.waitUntil(lambda: win.result is not None, timeout=30000)  # model built and warm
    beat = Heartbeat(qtbot)
    with qtbot.waitSignal(win.prediction.predicted, timeout=30000):
        win.prediction.request(win.case.case_id, win.case.study)  # preprocess, forward, CAM
    gap = beat.stop(qtbot)
    assert win.viewer.cam is not None
    assert win.viewer.cam.shape == (1536, 1792)
    print(f"max heartbeat gap {gap * 1000:.1f} ms over {len(beat.ticks)} ticks")
    assert gap < 0.100, f"GUI thread stalled {gap * 1000:.0f} ms"


def test_preview_shows_the_mid_sagittal_slice_while_the_volume_loads(
    qtbot: Any, make_window: Any, ct_series: Path
) -> None:
    from sos_core.imaging.midsagittal import read_midsagittal

    win = make_window()
    preview = read_midsagittal(ct_series)
    assert isinstance(preview, Study)
    win.opener.case_id = "case-preview"  # a load of this case is in flight
    win.opener.preview_ready.emit("case-preview", preview)
    np.testing.assert_array_equal(win.viewer.pixels, preview.pixels)
    assert not win.viewer.slice_slider.isVisible()
    assert "whole volume" in win.prediction_panel.message.text()
    win.opener.cancel()
    # the full load replaces the preview with the scrollable volume
    with qtbot.waitSignal(win.case_shown, timeout=20000):
        win.open_path(ct_series)
    assert win.viewer.slice_slider.isVisible()


def test_the_opener_shows_the_preview_first_and_only_for_series(
    qtbot: Any, ct_series: Path, png_path: Path
) -> None:
    from sos_desktop.case_opener import CaseOpener

    opener = CaseOpener()
    events: list[str] = []
    opener.preview_ready.connect(lambda _cid, _study: events.append("preview"))
    opener.loaded.connect(lambda _case: events.append("volume"))
    with qtbot.waitSignal(opener.loaded, timeout=20000):
        opener.load(ct_series, "case-series")
    assert events == ["preview", "volume"]
    events.clear()
    with qtbot.waitSignal(opener.loaded, timeout=20000):
        opener.load(png_path, "case-png")
    assert events == ["volume"]
    assert not opener.busy
