"""The real model in the window: what the panel and overlay show equals what the Predictor
returns for the same image; the version with its weights hash is shown with every prediction
(RG-3); the About dialog shows the model card and follows a reload (RG-9); the device setting
reaches the Predictor."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sos_core.imaging import open_study
from sos_desktop.main_window import MainWindow
from sos_desktop.prediction_service import ModelInfo


def _open(qtbot: Any, win: MainWindow, path: Path) -> None:
    with qtbot.waitSignal(win.case_shown, timeout=20000):
        win.open_path(path)
    qtbot.waitUntil(lambda: win.result is not None, timeout=30000)


def test_the_panel_and_overlay_show_exactly_what_the_predictor_returns(
    qtbot: Any, make_window: Any, png_path: Path, predictor: Any, trained_student: Path
) -> None:
    win = make_window(model_dir=trained_student)
    _open(qtbot, win, png_path)
    expected = predictor.predict(open_study(png_path))
    shown = win.result.prediction
    assert shown.stage == expected.stage
    assert shown.probabilities == pytest.approx(expected.probabilities, abs=1e-6)

    panel = win.prediction_panel
    assert panel.stage_label.text() == f"Stage {expected.stage} \u00b7 {expected.stage_name}"
    assert [b.value() for b in panel.probability_bars] == [
        round(p * 1000) for p in expected.probabilities
    ]
    assert [b.format() for b in panel.probability_bars] == [
        f"{p * 100:.1f} %" for p in expected.probabilities
    ]
    for message in expected.messages:
        assert html.escape(message) in panel.flags_label.text()
    # RG-3: the version with the weights' hash prefix, next to the prediction and in the bar
    version = predictor.version
    assert re.fullmatch(r"test-student\+[0-9a-f]{8}", version)
    assert version in panel.model_label.text()
    assert "ran on CPU" in panel.model_label.text()
    assert version in win.model_status.text()

    assert win.viewer.overlay_shown()
    np.testing.assert_allclose(win.viewer.overlay_item.image, expected.cam, atol=1e-5)
    assert win.viewer.suggested_box_shown == pytest.approx(expected.box, abs=1e-3)
    assert win.viewer.crop_box() == pytest.approx(expected.box, abs=1e-3)  # starts from it


def _copy_as_new_version(src: Path, dest: Path, version: str, created: str) -> Path:
    """The same weights under a new card version (as a retrained, promoted model would be)."""
    shutil.copytree(src, dest)
    card = json.loads((dest / "model.json").read_text(encoding="utf-8"))
    card.update(version=version, created=created, parent_version=card["version"])
    (dest / "model.json").write_text(json.dumps(card), encoding="utf-8")
    return dest


def test_about_shows_the_model_card_and_follows_a_model_reload(
    qtbot: Any, make_window: Any, png_path: Path, predictor: Any, trained_student: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    win = make_window(model_dir=trained_student)
    about = win.models.show_about()
    assert about.isVisible()
    assert not about.isModal()
    assert "No model is loaded yet" in about.model_label.text()
    _open(qtbot, win, png_path)
    card = predictor.card
    text = about.model_label.text()
    assert html.escape(card.intended_use) in text
    assert predictor.version in text
    assert f"{card.training_data['train_cases']} training cases" in text
    assert "synthetic phantoms" in text
    assert f"accuracy {card.metrics['validation']['accuracy']:.1%}" in text
    assert f"on {card.metrics['validation']['n']} validation cases" in text
    assert f"Last changed</b>&nbsp;</td><td>{card.created[:10]}" in text

    new_dir = _copy_as_new_version(
        trained_student, tmp_path / "promoted", "test-student-2", "2027-01-02T03:04:05+00:00"
    )
    with qtbot.waitSignal(win.prediction.model_changed, timeout=30000) as blocker:
        win.reload_model(new_dir)
    info = blocker.args[0]
    assert isinstance(info, ModelInfo)
    new_version = f"test-student-2+{card.weights_sha256[:8]}"
    assert info.version == new_version
    text = about.model_label.text()
    assert new_version in text
    assert "2027-01-02 03:04 UTC" in text
    assert f"Retrained from</b>&nbsp;</td><td>{card.version}" in text
    # the case on screen is predicted again, so its version is the new model's (RG-3)
    qtbot.waitUntil(lambda: win.result.model_version == new_version, timeout=30000)
    assert new_version in win.prediction_panel.model_label.text()
    assert new_version in win.model_status.text()

    # a broken model folder is refused and the active model stays
    broken = tmp_path / "broken"
    shutil.copytree(trained_student, broken)
    (broken / "weights.safetensors").write_bytes(b"not weights")
    with qtbot.waitSignal(win.reporter.error_reported, timeout=30000) as blocker:
        win.reload_model(broken)
    assert blocker.args[0].title == "Could not load the model"
    assert blocker.args[0].expected
    assert win.prediction.info.version == new_version
    win.reporter.close_dialogs()


def test_the_device_setting_reaches_the_predictor(
    qtbot: Any, make_window: Any, png_path: Path, settings: Any, trained_student: Path
) -> None:
    import torch

    win = make_window(model_dir=trained_student)
    _open(qtbot, win, png_path)
    assert win.result.prediction.device == "cpu"  # settings say "cpu" (conftest)
    previous = settings.data_folder
    settings.device = "cuda"
    if torch.cuda.is_available():
        with qtbot.waitSignal(win.prediction.model_changed, timeout=30000):
            win.apply_settings(previous)
        qtbot.waitUntil(lambda: win.result.prediction.device == "cuda", timeout=30000)
        return
    # no GPU here: the Predictor itself refuses, with its sentence; the app carries on
    with qtbot.waitSignal(win.reporter.error_reported, timeout=30000) as blocker:
        win.apply_settings(previous)
    assert "no CUDA GPU is available" in blocker.args[0].sentence
    win.reporter.close_dialogs()


def test_training_summary_counts_cases_and_their_images() -> None:
    from sos_desktop.dialogs import training_summary

    both = {"train_cases": 700, "train_images": 1400, "synthetic": True}
    assert training_summary(both).startswith("700 training cases (1400 images); synthetic")
    one = {"train_cases": 700, "train_images": 700}
    assert training_summary(one) == "700 training cases"
    # cards written before train_images existed
    assert training_summary({"train_cases": 1400}) == "1400 training cases"
