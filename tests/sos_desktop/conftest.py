"""pytest-qt fixtures for the desktop: isolated settings, store and model folders, windows,
synthetic studies, a real (tiny, poor) model trained once per session, and a guard that fails
any test leaving a QThread or pool runnable running (napari `_dangling_qthreads`)."""

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
from tests.sos_core.training.conftest import make_tiny_dataset, student_config, teacher_config
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


@pytest.fixture(autouse=True)
def _isolated_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The review store goes to this test's folder, and there is no model unless a test names
    one: neither the user's data folder nor resources/models/ is ever used by a test."""
    monkeypatch.setenv("SOS_DATA_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("SOS_MODEL_DIR", str(tmp_path / "no-model"))


@pytest.fixture(scope="session")
def trained_student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real student model folder: a 2-epoch tiny teacher, then a 2-epoch tiny student.

    Its predictions are poor (near-uniform probabilities, always flagged), which is fine: GUI
    tests compare what the window shows with what this Predictor returns for the same image.
    """
    from sos_core.distill.config import config_from_dict
    from sos_core.distill.training import train

    root = tmp_path_factory.mktemp("desktop-model")
    data = make_tiny_dataset(root / "data", n=24)
    teacher = train(config_from_dict(teacher_config(data, root / "teacher", epochs=2)))
    student = train(
        config_from_dict(student_config(data, root / "student", teacher.model_dir, epochs=2))
    )
    return Path(student.model_dir)


@pytest.fixture(scope="session")
def predictor(trained_student: Path) -> Any:
    """The real Predictor on `trained_student` (CPU), for expected values in the test thread."""
    from sos_core.inference.predictor import Predictor

    return Predictor(trained_student, device="cpu")


@pytest.fixture
def settings(tmp_path: Path) -> AppSettings:
    """Settings in an INI file of this test only; the model runs on the CPU (as `predictor`)."""
    s = AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    s.device = "cpu"
    return s


@pytest.fixture
def make_window(qtbot: Any, settings: AppSettings) -> Callable[..., MainWindow]:
    """Build a shown MainWindow.

    `model_dir=` uses the real Predictor on that folder (CPU); `predictor=` plugs a scripted
    StubPredictor into the real service; neither: no model (the autouse folders). Labels go to
    the review store in $SOS_DATA_DIR unless `sink=` is given.
    """

    def make(
        predictor: StubPredictor | None = None, model_dir: Path | None = None, **kwargs: Any
    ) -> MainWindow:
        configure_pyqtgraph()
        service = None
        if predictor is not None:
            service = PredictionService(factory=lambda _dir, _dev: predictor)
        elif model_dir is not None:
            service = PredictionService(model_dir=model_dir, device="cpu")
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
