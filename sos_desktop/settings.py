"""Desktop preferences in QSettings, typed: reviewer, device, overlay defaults, data folder.

Tests pass their own `QSettings` (an INI file in tmp_path) so nothing leaks between runs.
Thread affinity: GUI thread.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QMainWindow, QSplitter

logger = logging.getLogger(__name__)

ORGANISATION = "SOS Review"
APPLICATION = "sos-review"
DEVICES = ("auto", "cpu", "cuda")
COLORMAPS = ("turbo", "inferno", "viridis", "plasma", "CET-L3")
MAX_RECENT = 10


def default_data_folder() -> Path:
    """Where the review store lives unless the user picks another folder: the core's default
    store location ($SOS_DATA_DIR, else the user's data folder for SOS Review)."""
    from sos_core.review.layout import default_location

    return default_location()


class AppSettings:
    """Typed access to the app's QSettings (GUI thread only)."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.qsettings = (
            qsettings if qsettings is not None else QSettings(ORGANISATION, APPLICATION)
        )

    # --- reviewer and review ------------------------------------------------------------------
    @property
    def reviewer(self) -> str:
        return str(self.qsettings.value("review/reviewer", "", type=str)).strip()

    @reviewer.setter
    def reviewer(self, name: str) -> None:
        self.qsettings.setValue("review/reviewer", name.strip())

    @property
    def age_hint_enabled(self) -> bool:
        return bool(self.qsettings.value("forensic/age_hint", False, type=bool))

    @age_hint_enabled.setter
    def age_hint_enabled(self, on: bool) -> None:
        self.qsettings.setValue("forensic/age_hint", bool(on))

    @property
    def age_hint_sex(self) -> str:
        sex = str(self.qsettings.value("forensic/sex", "female", type=str))
        return sex if sex in ("female", "male") else "female"

    @age_hint_sex.setter
    def age_hint_sex(self, sex: str) -> None:
        self.qsettings.setValue("forensic/sex", sex)

    # --- inference ----------------------------------------------------------------------------
    @property
    def device(self) -> str:
        dev = str(self.qsettings.value("inference/device", "auto", type=str))
        return dev if dev in DEVICES else "auto"

    @device.setter
    def device(self, dev: str) -> None:
        self.qsettings.setValue("inference/device", dev if dev in DEVICES else "auto")

    # --- overlay ------------------------------------------------------------------------------
    @property
    def overlay_visible(self) -> bool:
        return bool(self.qsettings.value("overlay/visible", True, type=bool))

    @overlay_visible.setter
    def overlay_visible(self, on: bool) -> None:
        self.qsettings.setValue("overlay/visible", bool(on))

    @property
    def overlay_opacity(self) -> float:
        value = float(self.qsettings.value("overlay/opacity", 0.45, type=float))
        return min(1.0, max(0.0, value))

    @overlay_opacity.setter
    def overlay_opacity(self, value: float) -> None:
        self.qsettings.setValue("overlay/opacity", float(min(1.0, max(0.0, value))))

    @property
    def overlay_colormap(self) -> str:
        name = str(self.qsettings.value("overlay/colormap", COLORMAPS[0], type=str))
        return name if name in COLORMAPS else COLORMAPS[0]

    @overlay_colormap.setter
    def overlay_colormap(self, name: str) -> None:
        self.qsettings.setValue("overlay/colormap", name if name in COLORMAPS else COLORMAPS[0])

    # --- files --------------------------------------------------------------------------------
    @property
    def data_folder(self) -> Path:
        text = str(self.qsettings.value("files/data_folder", "", type=str))
        return Path(text) if text else default_data_folder()

    @data_folder.setter
    def data_folder(self, folder: Path | str) -> None:
        self.qsettings.setValue("files/data_folder", str(folder))

    @property
    def last_folder(self) -> str:
        return str(self.qsettings.value("files/last_folder", "", type=str))

    @last_folder.setter
    def last_folder(self, folder: str) -> None:
        self.qsettings.setValue("files/last_folder", folder)

    def recent_paths(self) -> list[Path]:
        raw = self.qsettings.value("files/recent", [])
        items = [raw] if isinstance(raw, str) else list(raw or [])
        return [Path(p) for p in items if p]

    def add_recent(self, path: Path) -> list[Path]:
        """Put `path` first in the recent list (no duplicates, at most MAX_RECENT)."""
        paths = [path] + [p for p in self.recent_paths() if p != path]
        paths = paths[:MAX_RECENT]
        self.qsettings.setValue("files/recent", [str(p) for p in paths])
        return paths

    def clear_recent(self) -> None:
        self.qsettings.remove("files/recent")

    # --- window -------------------------------------------------------------------------------
    def save_bytes(self, key: str, data: QByteArray) -> None:
        self.qsettings.setValue(f"window/{key}", data)

    def load_bytes(self, key: str) -> QByteArray | None:
        value = self.qsettings.value(f"window/{key}")
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def sync(self) -> None:
        self.qsettings.sync()


def restore_window_state(
    settings: AppSettings, window: QMainWindow, splitters: Mapping[str, QSplitter]
) -> None:
    """Window geometry, dock/toolbar state and splitter positions as they were last saved."""
    if (geometry := settings.load_bytes("geometry")) is not None:
        window.restoreGeometry(geometry)
    if (state := settings.load_bytes("state")) is not None:
        window.restoreState(state)
    for key, splitter in splitters.items():
        if (sizes := settings.load_bytes(key)) is not None:
            splitter.restoreState(sizes)


def save_window_state(
    settings: AppSettings, window: QMainWindow, splitters: Mapping[str, QSplitter]
) -> None:
    settings.save_bytes("geometry", window.saveGeometry())
    settings.save_bytes("state", window.saveState())
    for key, splitter in splitters.items():
        settings.save_bytes(key, splitter.saveState())
    settings.sync()


__all__ = [
    "COLORMAPS",
    "DEVICES",
    "AppSettings",
    "default_data_folder",
    "restore_window_state",
    "save_window_state",
]
