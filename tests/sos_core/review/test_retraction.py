"""Withdrawing a label (undo of a case's first label) appends a retraction row (RG-1): the case is
unlabelled again and leaves the retraining queue, the label row stays, and nothing is updated or
deleted. A store of the previous schema migrates forward to hold retractions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from sos_core.errors import CaseNotFound, LabelRejected
from sos_core.review import ReviewStore
from sos_core.review.schema import SCHEMA_VERSION
from tests.sos_core.review.helpers import add_case, raw_connect


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ReviewStore]:
    with ReviewStore.open(tmp_path / "store") as s:
        yield s


@pytest.mark.req("RG-1")
def test_the_first_label_of_a_case_can_be_withdrawn_without_deleting_it(
    store: ReviewStore,
) -> None:
    case = add_case(store)
    other = add_case(store, 1)
    first = store.add_label(case.case_id, stage=2, box=(1, 2, 30, 40), reviewer="dr-a")
    store.add_label(other.case_id, stage=1, box=(1, 2, 30, 40), reviewer="dr-b")
    q = store.queue()
    assert (len(q), q.per_stage, q.per_reviewer) == (2, {1: 1, 2: 1}, {"dr-a": 1, "dr-b": 1})

    retraction = store.retract_label(first.id, reviewer="dr-a", note="wrong case")

    assert (retraction.label_id, retraction.case_id) == (first.id, case.case_id)
    assert store.current_label(case.case_id) is None  # unlabelled again
    assert store.labels_for_case(case.case_id) == [first]  # the row stays, unchanged
    assert store.retractions_for_case(case.case_id) == [retraction]
    q = store.queue()
    assert [i.case_id for i in q.items] == [other.case_id]
    assert (q.per_stage, q.per_reviewer) == ({1: 1}, {"dr-b": 1})
    (entry,) = [e for e in store.audit_entries(f"label:{first.id}") if e.action == "label.retract"]
    assert entry.actor == "dr-a"
    assert entry.details == {"case_id": case.case_id, "retraction_id": retraction.id}
    assert "wrong case" not in str(entry.details)  # free text stays out of the audit log
    assert store.verify_audit().ok

    # A withdrawn label cannot be corrected; a new label starts the case again.
    with pytest.raises(LabelRejected, match="withdrawn"):
        store.add_label(
            case.case_id, stage=0, box=(1, 1, 5, 5), reviewer="dr-a", supersedes=first.id
        )
    again = store.add_label(case.case_id, stage=3, box=(1, 1, 5, 5), reviewer="dr-a")
    assert store.current_label(case.case_id) == again
    assert {i.case_id for i in store.queue().items} == {case.case_id, other.case_id}


@pytest.mark.req("RG-1")
def test_only_the_label_in_force_can_be_withdrawn_and_only_once(store: ReviewStore) -> None:
    case = add_case(store)
    first = store.add_label(case.case_id, stage=1, box=(1, 2, 30, 40), reviewer="dr-a")
    second = store.add_label(
        case.case_id, stage=2, box=(1, 2, 30, 40), reviewer="dr-a", supersedes=first.id
    )
    with pytest.raises(LabelRejected, match="newest label"):
        store.retract_label(first.id, reviewer="dr-a")
    with pytest.raises(LabelRejected, match="reviewer"):
        store.retract_label(second.id, reviewer="  ")
    with pytest.raises(CaseNotFound):
        store.retract_label(second.id + 100, reviewer="dr-a")
    store.retract_label(second.id, reviewer="dr-a")
    with pytest.raises(LabelRejected, match="already been withdrawn"):
        store.retract_label(second.id, reviewer="dr-a")
    assert store.current_label(case.case_id) is None  # not the older label: withdrawn is out
    assert len(store.retractions_for_case(case.case_id)) == 1
    assert store.labels_for_case(case.case_id) == [first, second]


@pytest.mark.req("RG-1")
def test_raw_sql_cannot_change_retractions_or_withdraw_an_older_label(store: ReviewStore) -> None:
    case = add_case(store)
    other = add_case(store, 1)
    first = store.add_label(case.case_id, stage=1, box=(1, 2, 30, 40), reviewer="dr-a")
    second = store.add_label(
        case.case_id, stage=2, box=(1, 2, 30, 40), reviewer="dr-a", supersedes=first.id
    )
    store.retract_label(second.id, reviewer="dr-a")
    conn = raw_connect(store.db_path)
    try:
        for sql in ("UPDATE label_retractions SET note = 'x'", "DELETE FROM label_retractions"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                conn.execute(sql)
        insert = (
            "INSERT INTO label_retractions (label_id, case_id, reviewer, created_at)"
            " VALUES (?, ?, 'mallory', 'now')"
        )
        with pytest.raises(sqlite3.DatabaseError, match="newest label"):
            conn.execute(insert, (first.id, case.case_id))
        with pytest.raises(sqlite3.DatabaseError, match="its own case"):
            conn.execute(insert, (second.id, other.case_id))
    finally:
        conn.close()
    assert len(store.retractions_for_case(case.case_id)) == 1


def test_a_store_of_the_previous_schema_migrates_and_can_withdraw(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    with ReviewStore.open(folder, schema_version=2) as old:
        case = add_case(old)
        used = add_case(old, 1)
        label = old.add_label(case.case_id, stage=2, box=(1, 1, 10, 10), reviewer="before")
        trained = old.add_label(used.case_id, stage=1, box=(1, 1, 10, 10), reviewer="before")
        old.mark_used([trained.id], "run-1")
    with ReviewStore.open(folder) as store:
        conn = sqlite3.connect(f"file:{store.db_path}?mode=ro", uri=True)
        try:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        finally:
            conn.close()
        assert store.current_label(case.case_id) == label
        assert [i.case_id for i in store.queue().items] == [case.case_id]  # run-1 kept
        store.retract_label(label.id, reviewer="after")
        assert len(store.queue()) == 0
        assert store.integrity_problems() == []
        assert store.verify_audit().ok
