"""The in-memory label sink keeps the store's append-only semantics."""

from __future__ import annotations

from sos_desktop.label_sink import InMemoryLabelSink, LabelSink, ReviewDecision


def _d(case: str, stage: int, decision: str = "confirm") -> ReviewDecision:
    return ReviewDecision(case_id=case, stage=stage, reviewer="Dr A", decision=decision)  # type: ignore[arg-type]


def test_corrections_supersede_and_undo_appends() -> None:
    sink = InMemoryLabelSink()
    assert isinstance(sink, LabelSink)
    first = sink.save(_d("a", 1))
    second = sink.save(_d("a", 2, "correct"))
    other = sink.save(_d("b", 0))
    assert second.supersedes == first.label_id
    assert other.supersedes is None
    assert sink.latest("a") == second
    assert sink.undo_last() == other
    assert sink.latest("b") is None
    assert sink.undo_last() == second
    assert sink.latest("a") == first  # the superseded label is in force again
    assert len(sink.labels()) == 3  # nothing was deleted
    assert sink.undo_last() == first
    assert sink.undo_last() is None
