"""The launcher starts the prediction process before Qt loads, and the app's first model load
takes it over; the app then shows that process's predictions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sos_core.inference.predictor import Predictor
from sos_core.inference.predictor_process import FROZEN_FLAG, PredictorProcess, child_command
from sos_desktop import launch, predictor_loader


def test_early_prediction_process_only_for_a_normal_launch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(launch.EARLY_ENV, raising=False)
    assert launch.wants_early_predictor(["scan.dcm"])
    assert launch.wants_early_predictor([])
    assert not launch.wants_early_predictor(["--help"])
    assert not launch.wants_early_predictor(["--self-test"])
    monkeypatch.setenv(launch.EARLY_ENV, "0")
    assert not launch.wants_early_predictor(["scan.dcm"])
    monkeypatch.delenv(launch.EARLY_ENV)
    monkeypatch.setattr("sys.frozen", True, raising=False)  # a bundle: its own executable again
    assert launch.wants_early_predictor(["scan.dcm"])
    assert child_command() == [sys.executable, FROZEN_FLAG]


def test_the_bundle_entry_serves_the_prediction_process(trained_student: Path) -> None:
    """installer/launcher.py with the flag is the child a frozen app starts (its executable runs
    that script): it answers the wire protocol as `python -m` does."""
    from sos_core.inference.wire import read_message, write_message

    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, str(root / "installer" / "launcher.py"), FROZEN_FLAG],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        load = {"op": "load", "model": str(trained_student), "device": "cpu", "threads": 1}
        write_message(child.stdin, load)
        ready = read_message(child.stdout)
        assert ready["op"] == "ready"
        assert ready["version"] == Predictor(trained_student, "cpu").version
    finally:
        child.stdin.close()  # end of file: the child exits
        assert child.wait(timeout=60) == 0
        child.stdout.close()


@pytest.fixture
def early(trained_student: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("SOS_MODEL_DIR", str(trained_student))
    predictor_loader.start_early()
    started = predictor_loader._early
    yield started
    predictor_loader._early = None
    if started is not None:
        started.close()


def test_the_first_load_takes_over_the_early_process(early: Any, trained_student: Path) -> None:
    assert isinstance(early, PredictorProcess)
    first = predictor_loader.load_default_predictor(None, None)
    assert first is early
    assert predictor_loader._early is None  # claimed once
    again = predictor_loader.load_default_predictor(None, None)  # e.g. after a model reload
    assert isinstance(again, Predictor)
    assert again.version == first.version


def test_an_explicit_device_loads_here_and_stops_the_early_process(early: Any) -> None:
    got = predictor_loader.load_default_predictor(None, "cpu")
    assert isinstance(got, Predictor)
    assert early.pid is None  # closed


def test_the_window_shows_the_early_process_prediction(
    early: Any, make_window: Any, settings: Any, png_path: Path, qtbot: Any, trained_student: Path
) -> None:
    from sos_core.imaging import open_study

    settings.device = "auto"  # the default: the early process serves it
    win = make_window()
    service = win.prediction
    with qtbot.waitSignal(service.predicted, timeout=60_000) as got:
        win.open_path(png_path)
    assert service._predictor is early
    local = Predictor(trained_student, "cpu").predict(open_study(png_path))
    assert got.args[0].prediction.probabilities == local.probabilities
    assert service.info.device == "cpu"
