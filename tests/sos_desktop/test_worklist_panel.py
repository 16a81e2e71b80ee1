"""The worklist panel shows the core's priority order, filters, and steps through it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sos_core.worklist import WorklistEntry, order_worklist
from sos_desktop.worklist import WorklistPanel


def _e(name: str, **kw: Any) -> WorklistEntry:
    return WorklistEntry(case_id=f"case-{name}", path=Path(name), display_name=name, **kw)


ENTRIES = [
    _e("done", status="confirmed", reviewer="Dr A", predicted_stage=1, probabilities=(0.1, 0.9)),
    _e("fresh"),
    _e("sure", status="predicted", predicted_stage=0, probabilities=(0.97, 0.03)),
    _e("unsure", status="predicted", predicted_stage=1, probabilities=(0.45, 0.55)),
    _e("flag", status="flagged", predicted_stage=2, probabilities=(0.1, 0.2, 0.7), flags=("x",)),
]


def test_rows_follow_review_priority(qtbot: Any) -> None:
    panel = WorklistPanel()
    qtbot.addWidget(panel)
    panel.set_entries(ENTRIES)
    expected = [e.case_id for e in order_worklist(ENTRIES)]
    assert panel.visible_order() == expected
    assert [panel.table.item(r, 0).text() for r in range(5)] == [
        "flag",
        "unsure",
        "sure",
        "fresh",
        "done",
    ]
    assert panel.table.item(4, 4).text() == "Dr A"
    assert "5 cases, 4 to review" in panel.title.text()


def test_filters_sorting_and_navigation(qtbot: Any) -> None:
    panel = WorklistPanel()
    qtbot.addWidget(panel)
    panel.set_entries(ENTRIES)
    panel.filter.setCurrentText("Reviewed")
    assert panel.visible_order() == ["case-done"]
    panel.filter.setCurrentText("All cases")
    panel.sort.setCurrentText("Name")
    assert panel.visible_order()[0] == "case-done"
    panel.search.setText("SUR")
    assert panel.visible_order() == ["case-sure", "case-unsure"]
    panel.search.clear()
    panel.sort.setCurrentText("Review priority")
    assert panel.next_case_id(1) == "case-flag"  # nothing current yet: start at the top
    panel.set_current("case-unsure")
    assert panel.next_case_id(1) == "case-sure"
    assert panel.next_case_id(-1) == "case-flag"
    panel.set_current("case-done")
    assert panel.next_case_id(1) is None


def test_clicking_a_row_asks_to_open_that_case(qtbot: Any) -> None:
    panel = WorklistPanel()
    qtbot.addWidget(panel)
    panel.set_entries(ENTRIES)
    with qtbot.waitSignal(panel.case_activated, timeout=1000) as blocker:
        panel.table.cellClicked.emit(1, 0)
    assert blocker.args == ["case-unsure"]
