"""The locked validation set (RG-4): fixed once, grows only by an audited action, never trained on.

Membership is checked by pixel content, so a locked image exported and re-imported under another
case id (or file name) is still refused by training.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from sos_core.distill.config import config_from_dict
from sos_core.errors import CorruptStore, LabelRejected, LockedSetViolation, ParameterError
from sos_core.retrain import (
    check_training_dataset,
    fix_locked_set,
    grow_locked_set,
    guarded_train,
    import_locked_set,
    load_locked_set,
    training_items,
)
from sos_core.retrain.files import sha256_json
from sos_core.retrain.locked_set import locked_set_path
from sos_core.retrain.training_data import DatasetRow, stratified_split, write_dataset
from sos_core.review import ReviewStore, export_queue
from tests.sos_core.retrain.conftest import REVIEWER, fill_store, make_box_dataset
from tests.sos_core.training.conftest import teacher_config


@pytest.fixture
def locked_store(store: ReviewStore, box_data: dict[str, Path]) -> ReviewStore:
    import_locked_set(store, box_data["locked"], reviewer=REVIEWER, source_kind="synthetic")
    return store


def test_a_new_store_has_an_empty_locked_set(store: ReviewStore) -> None:
    locked = load_locked_set(store)
    assert len(locked) == 0
    assert locked.generation == 0


def test_fixing_records_ids_hashes_and_an_audit_entry(locked_store: ReviewStore) -> None:
    locked = load_locked_set(locked_store)
    assert len(locked) == 24
    assert locked.generation == 1
    doc = json.loads(locked_set_path(locked_store).read_text())
    assert doc["manifest_hash"] == locked.manifest_hash
    assert (
        sha256_json({k: v for k, v in doc.items() if k != "manifest_hash"}) == doc["manifest_hash"]
    )
    for member in locked.members:
        assert member.content_hash == locked_store.case(member.case_id).content_hash
    [entry] = locked_store.audit_entries(subject="locked_set")
    assert entry.action == "locked_set.fix"
    assert entry.details["manifest_hash"] == locked.manifest_hash
    assert locked_store.verify_audit().ok


def test_the_set_is_fixed_once_and_only_grows_by_an_audited_action(
    locked_store: ReviewStore, box_data: dict[str, Path]
) -> None:
    new = fill_store(locked_store, box_data["queue"])[:4]
    with pytest.raises(ParameterError, match="already fixed"):
        fix_locked_set(locked_store, new, actor=REVIEWER)
    with pytest.raises(ParameterError, match="reason"):
        grow_locked_set(locked_store, new, actor=REVIEWER, reason=" ")
    grown = grow_locked_set(locked_store, new, actor=REVIEWER, reason="more stage-3 cases")
    assert len(grown) == 28
    assert grown.generation == 2
    assert set(new) <= grown.case_ids
    actions = [e.action for e in locked_store.audit_entries(subject="locked_set")]
    assert actions == ["locked_set.fix", "locked_set.grow"]
    with pytest.raises(ParameterError, match="No new case"):
        grow_locked_set(locked_store, new, actor=REVIEWER, reason="again")


def test_unlabelled_or_already_trained_cases_cannot_be_locked(
    store: ReviewStore, box_data: dict[str, Path]
) -> None:
    bare = store.ingest(np.zeros((16, 16), np.uint16) + 7, source_kind="synthetic").case
    with pytest.raises(LabelRejected, match="without an expert label"):
        fix_locked_set(store, [bare.case_id], actor=REVIEWER)
    [trained] = fill_store(store, box_data["queue"])[:1]
    store.mark_used([store.current_label(trained).id], "run-1")  # type: ignore[union-attr]
    with pytest.raises(LabelRejected, match="already trained on"):
        fix_locked_set(store, [trained], actor=REVIEWER)


@pytest.mark.req("RG-4")
def test_removing_a_member_by_hand_is_detected(locked_store: ReviewStore) -> None:
    path = locked_set_path(locked_store)
    doc = json.loads(path.read_text())
    doc["members"] = doc["members"][1:]  # unlock one case ...
    doc["manifest_hash"] = sha256_json({k: v for k, v in doc.items() if k != "manifest_hash"})
    path.write_text(json.dumps(doc))  # ... and even fix up the self-hash
    with pytest.raises(CorruptStore, match="lacks a case the audit log locked"):
        load_locked_set(locked_store)
    path.write_text(path.read_text().replace('"generation": 1', '"generation": 7'))
    with pytest.raises(CorruptStore, match="own hash"):
        load_locked_set(locked_store)
    path.unlink()
    with pytest.raises(CorruptStore, match="missing"):
        load_locked_set(locked_store)


@pytest.mark.req("RG-4")
def test_locked_cases_are_not_in_the_queue_its_counts_or_its_export(
    locked_store: ReviewStore, box_data: dict[str, Path], tmp_path: Path
) -> None:
    locked = load_locked_set(locked_store)
    q = locked_store.queue()
    assert (len(q), q.per_stage, q.per_reviewer, q.locked_cases) == (0, {}, {}, 24)
    fill_store(locked_store, make_box_dataset(tmp_path / "new", 8, seed=7))
    q = locked_store.queue()
    assert len(q) == 8
    assert not {i.case_id for i in q.items} & locked.case_ids
    assert (q.per_stage, q.per_reviewer, q.locked_cases) == (
        {0: 2, 1: 2, 2: 2, 3: 2},
        {REVIEWER: 8},
        24,
    )
    export = export_queue(locked_store, tmp_path / "export", val_fraction=0.3)
    assert len(export.label_ids) == 8
    assert check_training_dataset(locked, export.folder) == 8  # clean: nothing locked in it


def test_a_locked_cases_label_cannot_be_withdrawn(locked_store: ReviewStore) -> None:
    member = load_locked_set(locked_store).members[0]
    label = locked_store.current_label(member.case_id)
    assert label is not None
    with pytest.raises(LabelRejected, match="locked validation set"):
        locked_store.retract_label(label.id, reviewer=REVIEWER)
    assert locked_store.current_label(member.case_id) == label


@pytest.mark.req("RG-4")
def test_training_on_a_dataset_with_a_locked_case_raises(
    locked_store: ReviewStore, box_data: dict[str, Path], tmp_path: Path
) -> None:
    # A dataset folder holding the locked cases (as another tool could write one): the training
    # side refuses it by content.
    locked = load_locked_set(locked_store)
    rows = []
    for member in locked.members:
        label = locked_store.current_label(member.case_id)
        assert label is not None
        case = locked_store.case(member.case_id)
        rows.append(
            DatasetRow(member.case_id, label.id, label.stage, label.box, case.modality,
                       case.pixel_spacing, case.blob)
        )  # fmt: skip
    splits = stratified_split(rows, 0.3)
    folder = write_dataset(locked_store, rows, splits, tmp_path / "data")
    with pytest.raises(LockedSetViolation) as info:
        check_training_dataset(locked, folder)
    assert set(info.value.case_ids) == locked.case_ids
    config = config_from_dict(teacher_config(folder, tmp_path / "run", epochs=1))
    with pytest.raises(LockedSetViolation, match="locked validation set"):
        guarded_train(config, locked)
    assert not (tmp_path / "run").exists()  # refused before training began


@pytest.mark.req("RG-4")
def test_a_locked_image_under_a_new_case_id_is_still_refused(
    locked_store: ReviewStore, box_data: dict[str, Path], tmp_path: Path
) -> None:
    # A dataset folder that renames a locked image and gives it a fresh case id.
    data = tmp_path / "data"
    shutil.copytree(box_data["queue"], data)
    rows = [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines()]
    locked = load_locked_set(locked_store)
    assert check_training_dataset(locked, data) == len(rows)  # clean data passes
    shutil.copy(box_data["locked"] / "images" / "case005.png", data / "images" / "renamed.png")
    rows.append({**rows[0], "file": "images/renamed.png", "case_id": "brand-new-id"})
    (data / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(LockedSetViolation) as info:
        check_training_dataset(locked, data)
    assert info.value.case_ids == ("brand-new-id",)


@pytest.mark.req("RG-4")
def test_a_locked_image_reingested_under_a_new_case_id_is_excluded(
    locked_store: ReviewStore,
) -> None:
    member = load_locked_set(locked_store).members[0]
    pixels = locked_store.pixels(member.case_id)
    # Same picture, other dtype: the store sees other bytes and makes a new case ...
    again = locked_store.ingest(
        pixels.astype(np.int32), source_kind="synthetic", modality="slice"
    ).case
    assert again.case_id != member.case_id
    label = locked_store.current_label(member.case_id)
    assert label is not None
    locked_store.add_label(again.case_id, stage=label.stage, box=label.box, reviewer=REVIEWER)
    # ... which the retraining queue still holds out, by pixel content.
    items, excluded = training_items(locked_store, load_locked_set(locked_store))
    assert again.case_id not in {i.case_id for i in items}
    assert excluded == 25
