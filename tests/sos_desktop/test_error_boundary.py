"""The error boundary: typed sentence, traceback as details, logged, app kept alive."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from sos_core.errors import NotAnImage
from sos_desktop.error_boundary import INTERNAL_SENTENCE, ErrorReporter, error_boundary


def test_typed_error_shows_its_sentence_and_details(qtbot: Any, caplog: Any) -> None:
    reporter = ErrorReporter(show_dialogs=True)
    caplog.set_level(logging.DEBUG, logger="sos_desktop.error_boundary")
    with qtbot.waitSignal(reporter.error_reported, timeout=1000) as blocker:  # noqa: SIM117
        with error_boundary("Could not open study", reporter):
            raise NotAnImage("CANARY-notes.txt holds no image; open a DICOM, PNG, JPEG or TIFF.")
    rep = blocker.args[0]
    assert rep.title == "Could not open study"
    assert rep.sentence.startswith("CANARY-notes.txt holds no image")
    assert rep.expected
    assert "NotAnImage" in rep.details
    box = reporter.last_dialog
    assert box is not None
    assert box.isVisible()
    assert not box.isModal()
    assert box.informativeText() == rep.sentence
    assert "Traceback" in box.detailedText()
    # the log names the type, never the message (it may name a patient's folder)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings
    assert all("CANARY" not in r.getMessage() for r in warnings)
    reporter.close_dialogs()
    qtbot.waitUntil(lambda: not reporter.dialogs, timeout=1000)


def test_internal_errors_get_a_generic_sentence(qtbot: Any) -> None:
    reporter = ErrorReporter(show_dialogs=False)
    with error_boundary("Could not show study", reporter):
        {}["missing"]  # noqa: B018
    (rep,) = reporter.reports
    assert rep.sentence == INTERNAL_SENTENCE
    assert not rep.expected
    assert "KeyError" in rep.details


def test_keyboard_interrupt_is_never_swallowed(qtbot: Any) -> None:
    reporter = ErrorReporter(show_dialogs=False)
    with pytest.raises(KeyboardInterrupt), error_boundary("x", reporter):
        raise KeyboardInterrupt
    assert reporter.reports == []
