"""The locked validation set (RG-4): cases every candidate is judged on and nothing trains on.

Membership is fixed once (`fix_locked_set`, when a store is created or a labelled dataset is
imported) and afterwards only grows by an explicit, audited action (`grow_locked_set`). It lives
in `<store>/locked_set.json`: case ids plus two pixel hashes per case and a `manifest_hash` over
the whole document. Each change is also written to the store's hash-chained audit log with the
case ids and their content hashes, so a hand-edited file is caught on load: a wrong self-hash,
a member the audit log has that the file lacks, or a member whose pixels changed.

Training loaders check by *content*, not only by id (`check_training_dataset`): an image of the
locked set exported and re-imported under another case id is still refused.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sos_core.errors import CorruptStore, LabelRejected, LockedSetViolation, ParameterError
from sos_core.retrain.files import FileLock, read_json, sha256_json, write_json_atomic
from sos_core.retrain.training_data import DATA_ACTIONS, read_image_file
from sos_core.review.audit import utc_now
from sos_core.review.export import pixel_key
from sos_core.review.layout import LOCKED_SET_NAME
from sos_core.review.locked_cases import SUBJECT

if TYPE_CHECKING:
    from sos_core.review.store import ReviewStore

logger = logging.getLogger(__name__)

FORMAT = 1


@dataclass(frozen=True, slots=True)
class LockedMember:
    """One locked case: pseudonymous id, the store's pixel hash and the export pixel hash."""

    case_id: str
    content_hash: str
    pixel_key: str
    added_at: str
    added_by: str


@dataclass(frozen=True, slots=True)
class LockedSet:
    """The locked validation set of one store; empty (generation 0) until it is fixed."""

    members: tuple[LockedMember, ...]
    manifest_hash: str
    generation: int
    path: Path

    def __len__(self) -> int:
        return len(self.members)

    @property
    def case_ids(self) -> frozenset[str]:
        return frozenset(m.case_id for m in self.members)

    @property
    def content_hashes(self) -> frozenset[str]:
        return frozenset(m.content_hash for m in self.members)

    @property
    def pixel_keys(self) -> frozenset[str]:
        return frozenset(m.pixel_key for m in self.members)

    def holds(self, *, case_id: str = "", content: str = "", key: str = "") -> bool:
        """True if a case id, store content hash or export pixel key belongs to the set."""
        return case_id in self.case_ids or content in self.content_hashes or key in self.pixel_keys


def locked_set_path(store: ReviewStore) -> Path:
    return store.folder / LOCKED_SET_NAME


def load_locked_set(store: ReviewStore) -> LockedSet:
    """The store's locked set, verified against its own hash and the audit log.

    Raises
    ------
    CorruptStore
        The file is missing although the audit log says a set was fixed, it is not valid JSON,
        its hash does not match its content, it belongs to another store, or it lacks a member
        the audit log recorded (a member was removed by hand).
    """
    path = locked_set_path(store)
    audited = store.locked_members_audited()
    if not path.exists():
        if audited:
            raise _corrupt(path, "is missing although the audit log records one")
        return LockedSet((), sha256_json([]), 0, path)
    try:
        doc = read_json(path)
        members = tuple(LockedMember(**m) for m in doc["members"])
        stored_hash = str(doc["manifest_hash"])
        generation = int(doc["generation"])
        store_id = doc["store_id"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _corrupt(path, "cannot be read") from exc
    if sha256_json(_hashed_part(doc)) != stored_hash:
        raise _corrupt(path, "does not match its own hash (it was edited by hand)")
    if store_id != store.meta().get("store_id"):
        raise _corrupt(path, "belongs to another review store")
    by_id = {m.case_id: m for m in members}
    for case_id, content in audited.items():
        if case_id not in by_id or by_id[case_id].content_hash != content:
            raise _corrupt(path, "lacks a case the audit log locked")
    if len(by_id) > len(audited):  # an interrupted grow: harmless (more is locked, not less)
        logger.warning(
            "the locked set holds %d case(s) the audit log lacks", len(by_id) - len(audited)
        )
    return LockedSet(members, stored_hash, generation, path)


def fix_locked_set(store: ReviewStore, case_ids: Iterable[str], *, actor: str) -> LockedSet:
    """Fix the locked set for the first time (at store creation or dataset import), audited.

    Raises
    ------
    ParameterError
        A set is already fixed (use `grow_locked_set`), or no case was given.
    CaseNotFound, LabelRejected
        A case does not exist, has no label, or was already trained on.
    """
    return _change(store, case_ids, actor=actor, action="locked_set.fix", reason="fixed")


def grow_locked_set(
    store: ReviewStore, case_ids: Iterable[str], *, actor: str, reason: str
) -> LockedSet:
    """Add cases to the locked set (never removes one); an explicit, audited action.

    Raises
    ------
    ParameterError
        No set is fixed yet, no new case was given, or `reason` is empty.
    CaseNotFound, LabelRejected
        A case does not exist, has no label, or was already trained on.
    """
    if not reason.strip():
        raise ParameterError("Growing the locked validation set needs a reason for the audit log.")
    return _change(store, case_ids, actor=actor, action="locked_set.grow", reason=reason)


def _change(
    store: ReviewStore, case_ids: Iterable[str], *, actor: str, action: str, reason: str
) -> LockedSet:
    wanted = sorted(set(case_ids))
    if not actor.strip():
        raise ParameterError("Changing the locked validation set needs the id of who does it.")
    with FileLock(store.folder / f".{LOCKED_SET_NAME}.lock"):
        current = load_locked_set(store)
        if action == "locked_set.fix" and current.generation > 0:
            raise ParameterError(
                "The locked validation set is already fixed; it can only grow by an explicit "
                "action."
            )
        if action == "locked_set.grow" and current.generation == 0:
            raise ParameterError("There is no locked validation set yet; fix one first.")
        new = [c for c in wanted if c not in current.case_ids]
        if not new:
            raise ParameterError("No new case was given for the locked validation set.")
        trained = _trained_label_ids(store)
        now = utc_now()
        added = [_member(store, c, trained, now, actor) for c in new]
        members = sorted([*current.members, *added], key=lambda m: m.case_id)
        doc: dict[str, Any] = {
            "format": FORMAT,
            "store_id": store.meta().get("store_id"),
            "generation": current.generation + 1,
            "updated_at": now,
            "members": [_member_dict(m) for m in members],
        }
        doc["manifest_hash"] = sha256_json(_hashed_part(doc))
        write_json_atomic(locked_set_path(store), doc)
        store.record(
            actor=actor,
            action=action,
            subject=SUBJECT,
            details={
                "manifest_hash": doc["manifest_hash"],
                "generation": doc["generation"],
                "reason": reason,
                "added": {m.case_id: m.content_hash for m in added},
                "n_cases": len(members),
            },
        )
    logger.info("locked validation set now holds %d case(s)", len(members))
    return load_locked_set(store)


def _member(
    store: ReviewStore, case_id: str, trained: set[int], now: str, actor: str
) -> LockedMember:
    case = store.case(case_id)  # CaseNotFound names nothing identifying
    labels = store.labels_for_case(case_id)
    if store.current_label(case_id) is None:  # never labelled, or its label was withdrawn
        raise LabelRejected(
            "A case without an expert label cannot join the locked validation set; label it first."
        )
    if any(label.id in trained for label in labels):
        raise LabelRejected(
            "A case that was already trained on cannot join the locked validation set."
        )
    return LockedMember(
        case_id=case_id,
        content_hash=case.content_hash,
        pixel_key=pixel_key(store.blobs.get_array(case.blob)),
        added_at=now,
        added_by=actor,
    )


def _member_dict(m: LockedMember) -> dict[str, str]:
    return {
        "case_id": m.case_id,
        "content_hash": m.content_hash,
        "pixel_key": m.pixel_key,
        "added_at": m.added_at,
        "added_by": m.added_by,
    }


def _hashed_part(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "manifest_hash"}


def _trained_label_ids(store: ReviewStore) -> set[int]:
    ids: set[int] = set()
    for entry in store.audit_entries():
        if entry.action in DATA_ACTIONS:
            ids.update(int(i) for i in entry.details.get("label_ids", []))
    return ids


def _corrupt(path: Path, what: str) -> CorruptStore:
    return CorruptStore(
        f"The locked validation set file {path.name} {what}; restore it from a backup of the "
        "store before retraining.",
        path=path,
    )


def check_training_dataset(
    locked: LockedSet, dataset_dir: str | Path, *, splits: tuple[str, ...] = ("train", "val")
) -> int:
    """Refuse a dataset whose training rows hold a locked case, by id or by pixel content.

    Every image of the training splits is decoded and hashed (`pixel_key`), so a locked image
    under another case id or file name is still found. Returns the number of rows checked.

    Raises
    ------
    LockedSetViolation
        At least one training row is a locked case; `.case_ids` lists the rows' case ids.
    """
    from sos_core.distill.dataset import read_manifest

    if not len(locked):
        return 0
    folder = Path(dataset_dir)
    rows = [r for r in read_manifest(folder) if r.split in splits]
    hits = []
    for row in rows:
        if (
            row.case_id in locked.case_ids
            or pixel_key(read_image_file(row.path)) in locked.pixel_keys
        ):
            hits.append(row.case_id)
    if hits:
        raise LockedSetViolation(
            f"{len(hits)} training case(s) in {folder.name} belong to the locked validation set; "
            "they are never trained on, so remove them before training.",
            path=folder,
            case_ids=tuple(hits),
        )
    return len(rows)
