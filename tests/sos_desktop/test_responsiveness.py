"""The GUI thread stays responsive while a CBCT series loads (issue: heartbeat < 100 ms)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QTimer

import sos_core.inference as inference
from sos_core.imaging.study import Study
from tests.sos_desktop.study_fixtures import write_ct_series


def test_heartbeat_never_stalls_while_a_cbct_series_loads(
    qtbot: Any, make_window: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(inference, "Predictor", raising=False)
    series = write_ct_series(tmp_path / "cbct", n=96, rows=128, cols=128)
    win = make_window()
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    qtbot.waitUntil(lambda: len(ticks) >= 3, timeout=2000)
    with qtbot.waitSignal(win.case_shown, timeout=60000):
        win.open_path(series)
    qtbot.waitUntil(lambda: not win.prediction.busy, timeout=20000)
    win.step_slice(1)  # scrolling is GUI-thread work too
    qtbot.waitUntil(lambda: len(ticks) >= 3 + 5, timeout=2000)
    timer.stop()
    gaps = np.diff(ticks)
    assert win.viewer.slice_slider.maximum() == 127
    print(f"max heartbeat gap {gaps.max() * 1000:.1f} ms over {len(ticks)} ticks")
    assert gaps.max() < 0.100, f"GUI thread stalled {gaps.max() * 1000:.0f} ms"


def test_preview_shows_the_mid_sagittal_slice_while_the_volume_loads(
    qtbot: Any, make_window: Any, ct_series: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sos_core.imaging.midsagittal import read_midsagittal

    monkeypatch.delattr(inference, "Predictor", raising=False)
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
