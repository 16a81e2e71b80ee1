"""pytest-qt fixtures for the desktop: isolated settings, windows, synthetic studies, and a
guard that fails any test leaving a QThread or pool runnable running (napari
`_dangling_qthreads`)."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QSettings, QThread, QThreadPool
from PySide6.QtWidgets import QApplication

from sos_desktop import workers
from sos_desktop.app import configure_pyqtgraph
from sos_desktop.error_boundary import ErrorReporter
from sos_desktop.main_window import MainWindow
from sos_desktop.prediction_service import PredictionService
from sos_desktop.settings import AppSettings
from tests.sos_desktop.doubles import StubPredictor
from tests.sos_desktop.study_fixtures import write_ct_series

GRACE_MS = 3000  # a task may still be delivering its last signal when the test body ends


@pytest.fixture(autouse=True)
def _no_dangling_threads(qapp: QApplication, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    started: list[weakref.ref[QThread]] = []
    original = QThread.start

    def recording_start(self: QThread, *args: Any) -> None:
        started.append(weakref.ref(self))
        original(self, *args)

    monkeypatch.setattr(QThread, "start", recording_start)
    yield
    pool = QThreadPool.globalInstance()
    idle = pool.waitForDone(GRACE_MS)
    running = [t for r in started if (t := r()) is not None and not t.wait(GRACE_MS)]
    QApplication.processEvents()  # deliver queued results so finished tasks mark themselves done
    live = [t.name for t in workers.live_tasks()]
    assert idle, f"test left {pool.activeThreadCount()} pool runnable(s) running"
    assert not running, f"test left {len(running)} QThread(s) running"
    assert not live, f"test left background tasks unfinished: {live}"


@pytest.fixture
def settings(tmp_path: Path) -> AppSettings:
    """Settings in an INI file of this test only."""
    return AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))


@pytest.fixture
def make_window(qtbot: Any, settings: AppSettings) -> Callable[..., MainWindow]:
    """Build a shown MainWindow; `predictor=` plugs a StubPredictor into the real service."""

    def make(predictor: StubPredictor | None = None, **kwargs: Any) -> MainWindow:
        configure_pyqtgraph()
        service = None
        if predictor is not None:
            service = PredictionService(factory=lambda _dir, _dev: predictor)
        reporter = ErrorReporter(show_dialogs=True)
        win = MainWindow(
            kwargs.pop("settings", settings), prediction=service, reporter=reporter, **kwargs
        )
        qtbot.addWidget(win)
        win.show()
        qtbot.waitExposed(win)
        return win

    return make


@pytest.fixture
def png_path(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    arr = (rng.random((120, 160)) * 200).astype(np.uint8)
    arr[40:80, 50:110] = 250
    path = tmp_path / "ceph.png"
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def ct_series(tmp_path: Path) -> Path:
    return write_ct_series(tmp_path / "cbct", n=24, rows=32, cols=40)
