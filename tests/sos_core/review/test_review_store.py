"""Labels, predictions, the queue and the audit log: append-only (RG-1), tamper-evident (RG-2)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sos_core.errors import CaseNotFound, LabelRejected, ParameterError
from sos_core.inference.prediction import Prediction
from sos_core.review import ReviewStore
from tests.sos_core.review.helpers import add_case, raw_connect


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ReviewStore]:
    with ReviewStore.open(tmp_path / "store") as s:
        yield s


def _prediction(stage: int = 1, version: str = "phantom-v1+ab12cd") -> Prediction:
    probs = [0.1, 0.1, 0.1, 0.1]
    probs[stage] = 0.7
    return Prediction(
        stage=stage,
        stage_name="x",
        probabilities=tuple(probs),
        model_version=version,
        device="cpu",
        box=(2.0, 3.0, 20.0, 30.0),
    )


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"reviewer": ""}, "reviewer"),
        ({"reviewer": "   "}, "reviewer"),
        ({"stage": 4}, "stage"),
        ({"stage": -1}, "stage"),
        ({"stage": True}, "stage"),
        ({"box": (10, 10, 5, 20)}, "box"),
        ({"box": (0, 0, 65, 10)}, "box"),  # beyond the 64 columns
        ({"box": (0, 0, float("nan"), 10)}, "box"),
        ({"box": (1, 2, 3)}, "box"),
        ({"box_source": "model"}, "box source"),
        ({"reason": "because"}, "reason"),
        ({"note": "x" * 2001}, "note"),
    ],
)
def test_invalid_labels_are_rejected_and_nothing_is_written(
    store: ReviewStore, changes: dict[str, object], match: str
) -> None:
    case = add_case(store)
    fields: dict[str, object] = {"stage": 1, "box": (1, 2, 30, 40), "reviewer": "dr-a"}
    fields.update(changes)
    n_audit = len(store.audit_entries())
    with pytest.raises(LabelRejected, match=match):
        store.add_label(case.case_id, **fields)  # type: ignore[arg-type]
    assert store.labels_for_case(case.case_id) == []
    assert len(store.audit_entries()) == n_audit


def test_unknown_case_and_prediction_are_typed_errors(store: ReviewStore) -> None:
    with pytest.raises(CaseNotFound):
        store.add_label("nope", stage=1, box=(0, 0, 1, 1), reviewer="r")
    case = add_case(store)
    with pytest.raises(CaseNotFound):
        store.add_label(case.case_id, stage=1, box=(0, 0, 1, 1), reviewer="r", prediction_id=99)
    other = add_case(store, 1)
    pred = store.add_prediction(other.case_id, _prediction())
    with pytest.raises(LabelRejected, match="another case"):
        store.add_label(
            case.case_id, stage=1, box=(0, 0, 1, 1), reviewer="r", prediction_id=pred.id
        )


def test_label_answering_a_prediction_records_its_model_version(store: ReviewStore) -> None:
    case = add_case(store)
    pred = store.add_prediction(case.case_id, _prediction(2))
    assert store.predictions_for_case(case.case_id) == [pred]
    label = store.add_label(
        case.case_id,
        stage=2,
        box=pred.box,  # type: ignore[arg-type]
        box_source="suggested",
        reviewer="dr-a",
        prediction_id=pred.id,
    )
    assert label.model_version == "phantom-v1+ab12cd"
    assert label.created_at.endswith("Z")
    assert label.box_source == "suggested"
    with pytest.raises(ParameterError):
        store.add_prediction(case.case_id, _prediction(version=""))


# --- RG-1 ---------------------------------------------------------------------------------------


@pytest.mark.req("RG-1")
def test_raw_sql_cannot_update_delete_or_replace_labels(store: ReviewStore) -> None:
    case = add_case(store)
    label = store.add_label(case.case_id, stage=1, box=(1, 2, 30, 40), reviewer="dr-a")
    conn = raw_connect(store.db_path)  # no recursive_triggers: what a third-party tool has
    try:
        for sql in (
            "UPDATE labels SET stage = 3",
            "DELETE FROM labels",
            "INSERT OR REPLACE INTO labels (id, case_id, stage, x0, y0, x1, y1, box_source,"
            " reason, note, reviewer, created_at) SELECT id, case_id, 3, x0, y0, x1, y1,"
            " box_source, reason, note, 'mallory', created_at FROM labels",
            "UPDATE audit SET actor = 'mallory'",
            "DELETE FROM audit",
        ):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                conn.execute(sql)
    finally:
        conn.close()
    assert store.labels_for_case(case.case_id) == [label]
    assert store.verify_audit().ok


@pytest.mark.req("RG-1")
def test_api_has_no_update_and_corrections_append(store: ReviewStore) -> None:
    mutators = [
        n for n in dir(ReviewStore) if n.startswith(("update", "delete", "edit", "remove", "set_"))
    ]
    assert mutators == []
    case = add_case(store)
    first = store.add_label(case.case_id, stage=1, box=(1, 2, 30, 40), reviewer="dr-a")
    second = store.add_label(
        case.case_id,
        stage=2,
        box=(2, 2, 30, 40),
        reviewer="dr-b",
        reason="model_error",
        note="bridging visible on the upper border",
        supersedes=first.id,
    )
    third = store.add_label(
        case.case_id, stage=2, box=(2, 3, 31, 40), reviewer="dr-a", supersedes=second.id
    )
    assert store.labels_for_case(case.case_id) == [first, second, third]  # old rows readable
    assert store.current_label(case.case_id) == third
    assert [x.id for x in store.chain(third.id)] == [third.id, second.id, first.id]
    with pytest.raises(LabelRejected, match="already been corrected"):
        store.add_label(case.case_id, stage=0, box=(1, 1, 5, 5), reviewer="r", supersedes=first.id)
    other = add_case(store, 1)
    with pytest.raises(LabelRejected, match="same case"):
        store.add_label(other.case_id, stage=0, box=(1, 1, 5, 5), reviewer="r", supersedes=third.id)


@pytest.mark.req("RG-1")
def test_supersede_chains_cannot_form_a_cycle(store: ReviewStore) -> None:
    case = add_case(store)
    a = store.add_label(case.case_id, stage=1, box=(1, 2, 30, 40), reviewer="dr-a")
    b = store.add_label(case.case_id, stage=2, box=(1, 2, 30, 40), reviewer="dr-a", supersedes=a.id)
    conn = raw_connect(store.db_path)
    conn.execute("PRAGMA foreign_keys = ON")
    try:
        # A row pointing forward (at a later id) is the only way to close a loop: refused.
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "INSERT INTO labels (id, case_id, stage, x0, y0, x1, y1, box_source, reason,"
                " reviewer, created_at, supersedes) VALUES (?, ?, 1, 0, 0, 1, 1, 'expert',"
                " 'confirmed', 'mallory', 'now', ?)",
                (a.id - 1 if a.id > 1 else 0, case.case_id, b.id),
            )
        # A second correction of the same label would fork the chain: refused too.
        with pytest.raises(sqlite3.IntegrityError, match="already been superseded"):
            conn.execute(
                "INSERT INTO labels (case_id, stage, x0, y0, x1, y1, box_source, reason,"
                " reviewer, created_at, supersedes) VALUES (?, 1, 0, 0, 1, 1, 'expert',"
                " 'confirmed', 'mallory', 'now', ?)",
                (case.case_id, a.id),
            )
    finally:
        conn.close()
    for label in store.labels_for_case(case.case_id):
        ids = [x.id for x in store.chain(label.id)]
        assert ids == sorted(ids, reverse=True)
        assert len(set(ids)) == len(ids)


# --- RG-2 ---------------------------------------------------------------------------------------


def _busy_store(store: ReviewStore) -> None:
    for seed in range(3):
        case = add_case(store, seed)
        label = store.add_label(case.case_id, stage=seed, box=(1, 2, 30, 40), reviewer="dr-a")
        store.add_label(
            case.case_id, stage=3, box=(1, 2, 30, 40), reviewer="dr-b", supersedes=label.id
        )


@pytest.mark.req("RG-2")
def test_clean_store_verifies(store: ReviewStore) -> None:
    _busy_store(store)
    report = store.verify_audit()
    assert report.ok
    assert report.first_broken is None
    assert report.n_entries == 9


@pytest.mark.req("RG-2")
@pytest.mark.parametrize("column", ["details", "actor", "hash"])
def test_editing_one_audit_row_is_reported_at_that_row(store: ReviewStore, column: str) -> None:
    _busy_store(store)
    target = 5
    edits = {
        "details": '\'{"case_id":"x","stage":0}\'',
        "actor": "'mallory'",
        "hash": "'" + "0" * 64 + "'",
    }
    script = (
        "DROP TRIGGER audit_no_update;\n"
        f"UPDATE audit SET {column} = {edits[column]} WHERE seq = {target};\n"
    )
    cli = shutil.which("sqlite3")
    if cli:  # the sqlite3 command-line shell, as a tamperer would use it
        subprocess.run([cli, str(store.db_path)], input=script, text=True, check=True)
    else:
        conn = raw_connect(store.db_path)
        conn.executescript(script)
        conn.close()
    report = store.verify_audit()
    assert not report.ok
    assert report.first_broken == target


@pytest.mark.req("RG-2")
def test_deleting_an_audit_row_is_reported(store: ReviewStore) -> None:
    _busy_store(store)
    conn = raw_connect(store.db_path)
    conn.executescript("DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq = 3;")
    conn.close()
    assert store.verify_audit().first_broken == 4


# --- queue --------------------------------------------------------------------------------------


def test_queue_counts_and_training_use(store: ReviewStore) -> None:
    assert len(store.queue()) == 0
    cases = [add_case(store, seed) for seed in range(4)]
    store.add_label(cases[0].case_id, stage=0, box=(1, 1, 9, 9), reviewer="dr-a")
    first_b = store.add_label(cases[1].case_id, stage=1, box=(1, 1, 9, 9), reviewer="dr-a")
    store.add_label(
        cases[1].case_id, stage=2, box=(1, 1, 9, 9), reviewer="dr-b", supersedes=first_b.id
    )
    store.add_label(cases[2].case_id, stage=2, box=(1, 1, 9, 9), reviewer="dr-b")
    q = store.queue()  # cases[3] has no label: not queued
    assert [i.case_id for i in q.items] == [c.case_id for c in cases[:3]]
    assert q.per_stage == {0: 1, 2: 2}
    assert q.per_reviewer == {"dr-a": 1, "dr-b": 2}
    assert store.mark_used([i.label_id for i in q.items[:2]], "run-1") == 2
    assert [i.case_id for i in store.queue().items] == [cases[2].case_id]
    # A correction after training puts the case back in the queue.
    used = store.current_label(cases[0].case_id)
    store.add_label(
        cases[0].case_id,
        stage=1,
        box=(1, 1, 9, 9),
        reviewer="dr-b",
        supersedes=used.id,  # type: ignore[union-attr]
    )
    assert {i.case_id for i in store.queue().items} == {cases[0].case_id, cases[2].case_id}
    assert store.audit_entries("run:run-1")[0].details["label_ids"] == sorted(
        i.label_id for i in q.items[:2]
    )


def test_pixels_round_trip_exactly(store: ReviewStore) -> None:
    for pixels in (
        np.arange(48 * 64, dtype=np.uint16).reshape(48, 64),
        np.arange(-1000, 48 * 64 - 1000, dtype=np.int16).reshape(48, 64),
        np.linspace(0, 1, 48 * 64, dtype=np.float32).reshape(48, 64),
        (np.arange(48 * 64) % 256).astype(np.uint8).reshape(48, 64),
    ):
        case = store.ingest(pixels, source_kind="synthetic").case
        back = store.pixels(case.case_id)
        assert back.dtype == pixels.dtype
        assert np.array_equal(back, pixels)
        assert not back.flags.writeable


def test_damaged_blob_is_detected(store: ReviewStore) -> None:
    from sos_core.errors import BlobCorrupt

    case = add_case(store)
    path = store.blobs.path(case.blob)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BlobCorrupt):
        store.pixels(case.case_id)


def test_one_store_shared_by_threads(store: ReviewStore) -> None:
    import threading

    case = add_case(store)
    errors: list[BaseException] = []

    def work(who: str) -> None:
        try:
            for _ in range(15):
                store.add_label(case.case_id, stage=1, box=(1, 1, 9, 9), reviewer=who)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.labels_for_case(case.case_id)) == 60
    assert store.verify_audit().ok


@pytest.mark.req("RG-4")
def test_locked_validation_cases_are_never_queued_nor_counted_nor_exported(
    store: ReviewStore, tmp_path: Path
) -> None:
    from sos_core.review import export_queue
    from sos_core.review.layout import LOCKED_SET_NAME
    from sos_core.review.locked_cases import CHANGE_ACTIONS, SUBJECT

    cases = [add_case(store, seed) for seed in range(4)]
    for stage, case in enumerate(cases):
        store.add_label(case.case_id, stage=stage, box=(1, 1, 9, 9), reviewer=f"dr-{stage}")
    # Locked in the audit log (as `sos_core.retrain` records it) and, for an interrupted grow,
    # only in the locked-set file beside the database: both are held out.
    store.record(
        actor="qa",
        action=CHANGE_ACTIONS[0],
        subject=SUBJECT,
        details={"added": {cases[0].case_id: cases[0].content_hash}},
    )
    (store.folder / LOCKED_SET_NAME).write_text(
        json.dumps({"members": [{"case_id": cases[1].case_id}]})
    )
    assert store.locked_case_ids() == {cases[0].case_id, cases[1].case_id}
    q = store.queue()
    assert [i.case_id for i in q.items] == [cases[2].case_id, cases[3].case_id]
    assert (q.per_stage, q.per_reviewer) == ({2: 1, 3: 1}, {"dr-2": 1, "dr-3": 1})
    assert q.locked_cases == 2
    summary = export_queue(store, tmp_path / "export")
    rows = [json.loads(x) for x in (summary.folder / "manifest.jsonl").read_text().splitlines()]
    assert {r["case_id"] for r in rows} == {cases[2].case_id, cases[3].case_id}
    assert summary.per_stage == {2: 1, 3: 1}


@pytest.mark.req("RG-4")
def test_the_export_skips_a_locked_picture_ingested_again_under_another_id(
    store: ReviewStore, tmp_path: Path
) -> None:
    from sos_core.review import export_queue
    from sos_core.review.locked_cases import CHANGE_ACTIONS, SUBJECT

    locked = add_case(store)
    again = store.ingest(
        store.pixels(locked.case_id).astype(np.int32), source_kind="synthetic"
    ).case
    assert again.case_id != locked.case_id  # other bytes, so another case ...
    for case in (locked, again):
        store.add_label(case.case_id, stage=1, box=(1, 1, 9, 9), reviewer="dr-a")
    store.record(
        actor="qa",
        action=CHANGE_ACTIONS[0],
        subject=SUBJECT,
        details={"added": {locked.case_id: locked.content_hash}},
    )
    summary = export_queue(store, tmp_path / "export")
    assert summary.label_ids == ()  # ... but the same picture: not exported for training
    assert summary.skipped_locked == 1
    assert (summary.folder / "manifest.jsonl").read_text() == ""


def test_a_rolled_back_run_returns_its_labels_to_the_queue(store: ReviewStore) -> None:
    cases = [add_case(store, seed) for seed in range(3)]
    labels = [store.add_label(c.case_id, stage=1, box=(1, 1, 9, 9), reviewer="dr-a") for c in cases]
    store.mark_used([labels[0].id, labels[1].id], "run-1")
    store.mark_used([labels[2].id], "run-2")
    assert len(store.queue()) == 0
    assert store.release_run("run-1", actor="qa", reason="rollback") == [labels[0].id, labels[1].id]
    assert [i.label_id for i in store.queue().items] == [labels[0].id, labels[1].id]
    assert store.release_run("run-1", actor="qa", reason="again") == []  # idempotent
    (entry, _) = [e for e in store.audit_entries("run:run-1") if e.action == "training.release"]
    assert (entry.actor, entry.details["label_ids"]) == ("qa", [labels[0].id, labels[1].id])
    # A later promoted run that learns them marks them used again.
    store.mark_used([labels[0].id, labels[1].id], "run-3")
    assert len(store.queue()) == 0
    conn = raw_connect(store.db_path)
    try:
        for sql in ("DELETE FROM training_use", "UPDATE training_release SET run_id = 'x'"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                conn.execute(sql)
    finally:
        conn.close()
