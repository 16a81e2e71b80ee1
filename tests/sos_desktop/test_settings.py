"""Settings and window state survive a restart; the dialog writes what it shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings

from sos_desktop.error_boundary import ErrorReporter
from sos_desktop.main_window import MainWindow
from sos_desktop.settings import AppSettings
from sos_desktop.settings_dialog import SettingsDialog


def _settings(ini: Path) -> AppSettings:
    return AppSettings(QSettings(str(ini), QSettings.Format.IniFormat))


def _window(qtbot: Any, settings: AppSettings) -> MainWindow:
    win = MainWindow(settings, reporter=ErrorReporter(show_dialogs=False))
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    return win


def test_defaults_are_sane(tmp_path: Path) -> None:
    s = _settings(tmp_path / "s.ini")
    assert s.reviewer == ""
    assert s.device == "auto"
    assert s.overlay_visible
    assert 0.0 <= s.overlay_opacity <= 1.0
    assert not s.age_hint_enabled
    assert s.recent_paths() == []


def test_settings_and_window_state_survive_a_restart(qtbot: Any, tmp_path: Path) -> None:
    ini = tmp_path / "s.ini"
    first = _window(qtbot, _settings(ini))
    s = first.settings
    s.reviewer = "Dr Keep"
    s.device = "cpu"
    s.overlay_opacity = 0.7
    s.overlay_colormap = "viridis"
    s.age_hint_enabled = True
    s.data_folder = tmp_path / "data"
    s.add_recent(tmp_path / "a.png")
    s.add_recent(tmp_path / "b.png")
    first.resize(790, 700)  # the offscreen screen is 800 x 800
    first.splitter.setSizes([0, 430, 350])
    first.side_splitter.setSizes([300, 400])
    sizes = first.splitter.sizes()
    side = first.side_splitter.sizes()
    first.close()

    again = _window(qtbot, _settings(ini))
    t = again.settings
    assert (t.reviewer, t.device, t.overlay_colormap) == ("Dr Keep", "cpu", "viridis")
    assert t.overlay_opacity == 0.7
    assert t.age_hint_enabled
    assert t.data_folder == tmp_path / "data"
    assert t.recent_paths() == [tmp_path / "b.png", tmp_path / "a.png"]
    assert again.viewer.opacity.value() == 70
    assert again.viewer.colormap.currentText() == "viridis"
    assert (again.width(), again.height()) == (790, 700)
    assert again.splitter.sizes() == sizes
    assert again.side_splitter.sizes() == side
    assert [a.text() for a in again.recent_menu.actions()] == ["b.png", "a.png"]


def test_settings_dialog_writes_on_ok_only(qtbot: Any, tmp_path: Path) -> None:
    s = _settings(tmp_path / "s.ini")
    dialog = SettingsDialog(s)
    qtbot.addWidget(dialog)
    dialog.reviewer.setText("  Dr Dialog ")
    dialog.device.setCurrentIndex(dialog.device.findData("cuda"))
    dialog.age_hint.setChecked(True)
    dialog.reject()
    assert s.reviewer == ""
    dialog.accept()
    assert s.reviewer == "Dr Dialog"
    assert s.device == "cuda"
    assert s.age_hint_enabled
