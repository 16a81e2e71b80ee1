"""Menus and keyboard shortcuts of the main window, built in one place.

Every shortcut is a QAction on the window, so the Help ▸ Keyboard shortcuts table is generated
from the same list and cannot drift. Plain keys (0-3, N, F ...) do not fire while a text field
has focus: Qt lets line edits claim printable keys first (ShortcutOverride).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu

if TYPE_CHECKING:
    from sos_desktop.main_window import MainWindow

logger = logging.getLogger(__name__)


def _add(
    win: MainWindow,
    menu: QMenu,
    text: str,
    slot: Callable[[], object],
    keys: str | QKeySequence.StandardKey | list[str] | None = None,
    *,
    checkable: bool = False,
) -> QAction:
    action = QAction(text, win)
    if isinstance(keys, list):
        action.setShortcuts([QKeySequence(k) for k in keys])
    elif keys is not None:
        action.setShortcut(QKeySequence(keys))
    action.setCheckable(checkable)
    if checkable:
        action.toggled.connect(slot)
    else:
        action.triggered.connect(lambda _checked=False: slot())
    menu.addAction(action)
    win.addAction(action)  # window-wide shortcut even when the menu bar is hidden
    return action


def build_menus(win: MainWindow) -> dict[str, QAction]:
    """Create File / View / Review / Help menus on `win`; returns actions by key."""
    bar = win.menuBar()
    a: dict[str, QAction] = {}
    file = bar.addMenu("&File")
    a["open_file"] = _add(
        win, file, "Open &file\u2026", win.ask_open_file, QKeySequence.StandardKey.Open
    )
    a["open_folder"] = _add(win, file, "Open f&older\u2026", win.ask_open_folder, "Ctrl+Shift+O")
    win.recent_menu = file.addMenu("&Recent")
    file.addSeparator()
    a["export_png"] = _add(win, file, "Export &PNG\u2026", win.ask_export_png, "Ctrl+E")
    a["export_pdf"] = _add(
        win, file, "Export P&DF report\u2026", win.ask_export_pdf, "Ctrl+Shift+E"
    )
    file.addSeparator()
    a["new_store"] = _add(
        win, file, "Start a &new review store elsewhere\u2026", win.store.ask_new_store
    )
    a["settings"] = _add(win, file, "&Settings\u2026", win.show_settings, "Ctrl+,")
    file.addSeparator()
    a["quit"] = _add(win, file, "&Quit", win.close, QKeySequence.StandardKey.Quit)

    view = bar.addMenu("&View")
    v = win.viewer
    a["fit"] = _add(win, view, "&Fit image", v.fit, "F")
    a["overlay"] = _add(win, view, "&Attention map", v.set_overlay_visible, "O", checkable=True)
    a["overlay"].setChecked(v.overlay_toggle.isChecked())
    v.overlay_toggle.toggled.connect(a["overlay"].setChecked)
    window_menu = view.addMenu("&Window preset")
    a["auto"] = _add(win, window_menu, "&Auto", lambda: v.apply_preset("auto"), "A")
    a["bone"] = _add(win, window_menu, "&Bone (CT)", lambda: v.apply_preset("bone"), "B")
    a["soft"] = _add(
        win, window_menu, "&Soft tissue (CT)", lambda: v.apply_preset("soft tissue"), "S"
    )
    view.addSeparator()
    a["prev_slice"] = _add(win, view, "Previous slice", lambda: win.step_slice(-1), ["[", "PgUp"])
    a["next_slice"] = _add(win, view, "Next slice", lambda: win.step_slice(1), ["]", "PgDown"])
    a["model_slice"] = _add(win, view, "Go to the &model's slice", v.go_to_model_slice, "M")
    view.addSeparator()
    a["worklist"] = _add(win, view, "&Worklist", win.set_worklist_visible, "Ctrl+L", checkable=True)

    review = bar.addMenu("&Review")
    panel = win.review_panel
    a["save"] = _add(
        win, review, "&Confirm / save and next", win.confirm_or_save, ["Return", "Enter"]
    )
    for st in panel.scheme.stages:
        a[f"stage_{st.index}"] = _add(
            win, review, f"Stage {st.index}: {st.name}", lambda i=st.index: panel.choose_stage(i),
            str(st.index),
        )  # fmt: skip
    # Clicks the toolbar's checkable button, so the menu, the key and the button stay one state.
    a["draw_box"] = _add(win, review, "&Draw the SOS box", win.viewer.draw_box_button.click, "D")
    review.addSeparator()
    a["undo"] = _add(win, review, "&Undo last label", panel.undo, QKeySequence.StandardKey.Undo)
    a["next_case"] = _add(win, review, "&Next case", lambda: win.step_case(1), "N")
    a["prev_case"] = _add(win, review, "&Previous case", lambda: win.step_case(-1), "P")
    review.addSeparator()
    a["predict_all"] = _add(
        win, review, "Predict &all cases of the worklist", win.batch.start, "Ctrl+Shift+P"
    )
    a["reload_model"] = _add(win, review, "&Reload the model", win.reload_model)
    a["retrain"] = _add(win, review, "Re&train from reviews\u2026", win.retrain.show_dialog)

    help_menu = bar.addMenu("&Help")
    a["shortcuts"] = _add(win, help_menu, "&Keyboard shortcuts", win.show_shortcuts, "F1")
    a["about"] = _add(win, help_menu, "&About SOS Review", win.show_about)
    return a


def shortcut_table(actions: dict[str, QAction]) -> list[tuple[str, str]]:
    """(keys, action text) for every action that has a shortcut, plus mouse gestures."""
    rows = []
    for action in actions.values():
        keys = ", ".join(
            k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts()
        )
        if keys:
            rows.append((keys, action.text().replace("&", "").replace("\u2026", "")))
    rows += [
        ("Left-drag", "Pan the image"),
        ("Right-drag", "Window / level (horizontal: width, vertical: level)"),
        ("Wheel", "Volumes: scroll slices; images: zoom"),
        ("Ctrl+Wheel", "Zoom"),
        ("Shift+drag", "Draw the SOS crop box"),
        ("Drag the yellow box", "Adjust the SOS crop box"),
    ]
    return rows
