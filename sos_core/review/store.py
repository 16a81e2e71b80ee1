"""`ReviewStore`: cases, predictions, append-only labels and the audit log in one SQLite file.

The folder layout and default location are described in `sos_core.review.layout`.

Every write is one `BEGIN IMMEDIATE … COMMIT` transaction holding the row and its audit entry
(DB-2), retried while another process holds the lock, within a time budget (DB-5). A method
returns only after COMMIT has returned, so a returned label is durable. One `ReviewStore` may be
shared between threads (calls are serialised); each process opens its own.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from sos_core.errors import NotAStore, StoreBusy
from sos_core.review import audit, locked_cases, retrain_queue, tables
from sos_core.review.blobs import BlobStore
from sos_core.review.connection import check_header, check_identity, connect, ensure_local
from sos_core.review.crash import crash_point
from sos_core.review.deid import load_or_create_secret, pseudonym, secret_fingerprint
from sos_core.review.ingest import SourceKind, prepare_case
from sos_core.review.layout import (
    BLOB_DIR,
    DB_NAME,
    SECRET_NAME,
    SNAPSHOT_DIR,
    check_secret,
    create_database,
    default_location,
)
from sos_core.review.records import (
    CaseRecord,
    IngestResult,
    Label,
    PredictionRecord,
    Retraction,
    RetrainQueue,
)
from sos_core.review.schema import RETRACTIONS_SINCE, SCHEMA_VERSION, migrate
from sos_core.review.snapshot import backup_database

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from sos_core.imaging.study import Study
    from sos_core.inference.prediction import Prediction

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_N_STAGES = 4
DEFAULT_RETRY_BUDGET_S = 30.0
_SQLITE_BUSY_CODES = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED (primary codes)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and (code & 0xFF) in _SQLITE_BUSY_CODES:
        return True
    text = str(exc).lower()
    return "database is locked" in text or "database is busy" in text


class ReviewStore:
    """The review store of one folder. Open with `ReviewStore.open(...)`; close when done."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        folder: Path,
        db_path: Path,
        secret: bytes,
        *,
        retry_budget_s: float,
    ) -> None:
        self._conn = conn
        self._secret = secret
        self._lock = threading.RLock()
        self.folder = folder
        self.db_path = db_path
        self.blobs = BlobStore(folder / BLOB_DIR)
        self.retry_budget_s = retry_budget_s
        self.n_stages = int(self.meta().get("n_stages", DEFAULT_N_STAGES))
        with self._lock:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        # Only migration tests open a store at an older schema; they never withdraw labels.
        self._retractions = version >= RETRACTIONS_SINCE

    # --- lifecycle ----------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        location: str | os.PathLike[str] | None = None,
        *,
        create: bool = True,
        n_stages: int = DEFAULT_N_STAGES,
        retry_budget_s: float = DEFAULT_RETRY_BUDGET_S,
        schema_version: int = SCHEMA_VERSION,
    ) -> ReviewStore:
        """Open (or create) the store in `location` (a folder, or its database file).

        Parameters
        ----------
        location
            Store folder or `review.sqlite3` path; default `default_location()`.
        create
            Create a new store when the folder holds none.
        n_stages
            Stages of the scheme labels use (only for a new store).
        retry_budget_s
            How long a write waits for another process's lock before `StoreBusy`.
        schema_version
            Target schema; older values exist only for migration tests.

        Raises
        ------
        NotAStore, CorruptStore, StoreTooNew
            The file is not a usable store; it was left untouched (DB-7).
        StoreOnNetworkDrive
            The folder is on a network file system (DB-4).
        StoreSecretMissing
            The pseudonymisation key beside the database is missing or not this store's.
        """
        folder, db_path = _locate(location)
        ensure_local(folder)
        if db_path.exists():
            check_header(db_path)  # before anything else is created beside a foreign file
            secret = load_or_create_secret(folder / SECRET_NAME, create=False)
        elif not create:
            raise NotAStore(
                f"{folder.name} holds no SOS Review store; choose the folder of an existing "
                "store or create a new one.",
                path=db_path,
            )
        else:
            secret = _new_store(folder, db_path, n_stages=n_stages, schema_version=schema_version)
        conn = connect(db_path)
        try:
            if check_identity(conn, db_path) < schema_version:
                migrate(conn, db_path, folder / SNAPSHOT_DIR, target=schema_version)
            store = cls(conn, folder, db_path, secret, retry_budget_s=retry_budget_s)
            check_secret(store.meta(), secret, folder)
        except BaseException:
            conn.close()
            raise
        store.blobs.sweep_orphans()
        logger.info("review store opened (schema v%d)", schema_version)
        return store

    def close(self) -> None:
        """Close the connection; SQLite itself checkpoints and tidies its WAL files."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ReviewStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transactions ---------------------------------------------------------------------------

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in one IMMEDIATE transaction; retry while another process holds the lock."""
        return self._retry(fn, "BEGIN IMMEDIATE")

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in one read transaction: one consistent snapshot for multi-query reads."""
        return self._retry(fn, "BEGIN")

    def _retry(self, fn: Callable[[sqlite3.Connection], T], begin: str) -> T:
        deadline = time.monotonic() + self.retry_budget_s
        delay = 0.005
        while True:
            with self._lock:
                try:
                    return self._transaction(fn, begin)
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc):
                        raise
                    if time.monotonic() >= deadline:
                        raise StoreBusy(
                            "The review store stayed busy in another window for too long; "
                            "wait a moment and save again.",
                            path=self.db_path,
                        ) from exc
            logger.debug("review store busy; retrying")
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.25)

    def _transaction(self, fn: Callable[[sqlite3.Connection], T], begin: str) -> T:
        conn = self._conn
        conn.execute(begin)
        try:
            result = fn(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    # --- cases ----------------------------------------------------------------------------------

    def ingest(
        self,
        source: Study | np.ndarray,
        *,
        dataset: Dataset | None = None,
        source_kind: SourceKind | None = None,
        modality: str | None = None,
        pixel_spacing: tuple[float, float] | None = None,
        image: np.ndarray | None = None,
        source_label: str | None = None,
        retain_patient_characteristics: bool = False,
        burn_in_confirmed_by: str | None = None,
        redactions: Sequence[Sequence[float]] = (),
    ) -> IngestResult:
        """De-identify an image and add it as a case; the same pixels give the same case.

        Parameters
        ----------
        source
            A `Study` (2-D, or a volume with `image`) or a 2-D pixel array.
        dataset
            The pydicom header of a DICOM source (else read from `Study.sources[0]`).
        source_kind
            "dicom", "raster" or "synthetic"; inferred for a `Study` or with `dataset`.
        modality, pixel_spacing
            Overrides (spacing in mm, row then column).
        image
            The reviewed 2-D image of a volume (e.g. its mid-sagittal slice).
        source_label
            The user's own name for the source; never derived from a path (DI-5).
        retain_patient_characteristics
            Keep sex and age in months (never a birth date).
        burn_in_confirmed_by
            Reviewer id confirming that the pixels show no identifiers (DI-3).
        redactions
            [x0, y0, x1, y1] boxes blanked before hashing and storing (needs the reviewer id).

        Raises
        ------
        ParameterError, BurnedInAnnotation, StoreBusy
        """
        case = prepare_case(
            source,
            dataset=dataset,
            source_kind=source_kind,
            modality=modality,
            pixel_spacing=pixel_spacing,
            image=image,
            source_label=source_label,
            retain_patient_characteristics=retain_patient_characteristics,
            burn_in_confirmed_by=burn_in_confirmed_by,
            redactions=redactions,
        )
        existing = self._read(lambda c: tables.case_by_hash(c, case.content_hash))
        if existing is not None:
            logger.debug("ingest: pixels already stored as case %s", existing.case_id)
            return IngestResult(existing, created=False)
        identity = case.identity or "pixels"
        case_id = pseudonym(self._secret, f"case|{identity}|{case.content_hash}")[:24]
        source_key = pseudonym(self._secret, case.identity) if case.identity else None
        blob = self.blobs.put_array(case.pixels)  # durable before any row names it (DB-8)

        def insert(conn: sqlite3.Connection) -> IngestResult:
            again = tables.case_by_hash(conn, case.content_hash)  # another window, meanwhile
            if again is not None:
                return IngestResult(again, created=False)
            tables.insert_case(conn, case, case_id=case_id, source_key=source_key, blob=blob)
            return IngestResult(tables.case_by_id(conn, case_id), created=True)

        result = self._write(insert)
        crash_point("committed")
        logger.debug("ingest: case %s stored (created=%s)", case_id, result.created)
        return result

    add_case = ingest

    def case(self, case_id: str) -> CaseRecord:
        """The case `case_id`. Raises `CaseNotFound`."""
        return self._read(lambda c: tables.case_by_id(c, case_id))

    def cases(self) -> list[CaseRecord]:
        """Every case, oldest first."""
        return self._read(tables.all_cases)

    def pixels(self, case_id: str) -> np.ndarray:
        """The case's de-identified pixels (read-only), verified against the blob's SHA-256."""
        return self.blobs.get_array(self.case(case_id).blob)

    def confirm_no_burned_in(self, case_id: str, reviewer: str) -> CaseRecord:
        """Record an expert's confirmation that the image shows no identifiers (DI-3, audited)."""
        return self._write(lambda c: tables.confirm_burn_in(c, case_id, reviewer))

    # --- predictions and labels -------------------------------------------------------------

    def add_prediction(self, case_id: str, prediction: Prediction) -> PredictionRecord:
        """Store a model answer for a case (stage, probabilities, flags, box, model version)."""
        return self._write(lambda c: tables.insert_prediction(c, case_id, prediction))

    def predictions_for_case(self, case_id: str) -> list[PredictionRecord]:
        """The case's predictions, oldest first."""
        return self._read(lambda c: tables.predictions_for_case(c, case_id))

    def add_label(
        self,
        case_id: str,
        *,
        stage: int,
        box: Sequence[float],
        reviewer: str,
        box_source: str = "expert",
        reason: str = "confirmed",
        note: str = "",
        prediction_id: int | None = None,
        model_version: str | None = None,
        supersedes: int | None = None,
    ) -> Label:
        """Append an expert label (with its audit entry, in one transaction); returns after COMMIT.

        There is no update: to correct a label, add a new one with `supersedes=<old id>`.

        Raises
        ------
        LabelRejected
            A field is missing or out of range, or `supersedes` is not the case's open label.
        CaseNotFound
            No such case or prediction.
        """
        draft = tables.LabelDraft(
            case_id=case_id,
            stage=stage,
            box=tuple(box),
            reviewer=reviewer,
            box_source=box_source,
            reason=reason,
            note=note,
            prediction_id=prediction_id,
            model_version=model_version,
            supersedes=supersedes,
            retractions=self._retractions,
        )
        n_stages = self.n_stages
        return self._write(lambda c: tables.insert_label(c, draft, n_stages=n_stages))

    def labels_for_case(self, case_id: str) -> list[Label]:
        """Every label of the case, superseded ones included, oldest first."""
        return self._read(lambda c: tables.labels_for_case(c, case_id))

    def current_label(self, case_id: str) -> Label | None:
        """The case's label in force: its newest label, None if unlabelled or that was withdrawn."""
        flag = self._retractions
        return self._read(lambda c: tables.current_label(c, case_id, retractions=flag))

    def retract_label(self, label_id: int, *, reviewer: str, note: str = "") -> Retraction:
        """Withdraw the label in force of its case (append-only, audited; RG-1).

        Nothing is updated or deleted: a retraction row records that the label no longer holds,
        so the case counts as unlabelled (and leaves the retraining queue) until a new label is
        added, which then starts a new chain (`supersedes=None`). This is how the first label of
        a case is undone; a later label is undone by a correction restoring the one before.

        Raises
        ------
        LabelRejected
            It is not the case's newest label, it was withdrawn already, the case belongs to the
            locked validation set (which only grows), or the reviewer or note is invalid.
        CaseNotFound
            No such label.
        """
        locked = locked_cases.file_members(self.folder)

        def write(conn: sqlite3.Connection) -> Retraction:
            held = locked | frozenset(locked_cases.audited_members(conn))
            return tables.insert_retraction(
                conn, label_id, reviewer=reviewer, note=note, locked=held
            )

        return self._write(write)

    def retractions_for_case(self, case_id: str) -> list[Retraction]:
        """The case's withdrawn labels, oldest withdrawal first."""
        return self._read(lambda c: tables.retractions_for_case(c, case_id))

    def chain(self, label_id: int) -> list[Label]:
        """`label_id` and the labels it supersedes, newest first, down to the first label."""
        return self._read(lambda c: tables.chain(c, label_id))

    # --- retraining queue --------------------------------------------------------------------

    def queue(self) -> RetrainQueue:
        """Labelled cases the active model has not learned, with counts per stage and reviewer.

        Locked validation cases are never in it (RG-4); see `retrain_queue` for the rules.
        """
        in_file = locked_cases.file_members(self.folder)

        def read(conn: sqlite3.Connection) -> RetrainQueue:
            locked = in_file | frozenset(locked_cases.audited_members(conn))
            return retrain_queue.queue(conn, locked)

        return self._read(read)

    def mark_used(self, label_ids: Sequence[int], run_id: str, *, actor: str = "retrain") -> int:
        """Record that the promoted model of a run learned these labels (audited); they leave
        the queue. Returns how many were new."""
        ids = [int(i) for i in label_ids]
        return self._write(lambda c: retrain_queue.mark_used(c, ids, run_id, actor))

    def release_run(self, run_id: str, *, actor: str, reason: str) -> list[int]:
        """Record that the model of `run_id` was rolled back: the labels it marked used count
        as not learned again and return to the queue (audited; nothing is deleted). Returns
        the released label ids."""
        return self._write(lambda c: retrain_queue.release_run(c, run_id, actor, reason))

    def locked_case_ids(self) -> frozenset[str]:
        """The locked validation set's case ids, from the audit log and the locked-set file."""
        in_file = locked_cases.file_members(self.folder)
        return in_file | frozenset(self.locked_members_audited())

    def locked_members_audited(self) -> dict[str, str]:
        """case id → content hash of each locked validation case the audit log recorded."""
        return self._read(locked_cases.audited_members)

    # --- audit, integrity, backup -----------------------------------------------------------

    def audit_entries(self, subject: str | None = None) -> list[audit.AuditEntry]:
        """The audit log, optionally for one subject ("case:<id>", "label:<id>")."""
        return self._read(lambda c: audit.entries(c, subject=subject))

    def verify_audit(self) -> audit.AuditReport:
        """Recompute the audit hash chain (RG-2)."""
        return self._read(audit.verify)

    def record(self, *, actor: str, action: str, subject: str, details: dict[str, Any]) -> None:
        """Append a free audit entry (e.g. an export); `details` must hold no PHI."""
        self._write(
            lambda c: audit.append(c, actor=actor, action=action, subject=subject, details=details)
        )

    def integrity_problems(self) -> list[str]:
        """`integrity_check` and `foreign_key_check` findings; empty when the database is sound."""

        def check(conn: sqlite3.Connection) -> list[str]:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check")]
            problems = [] if rows == ["ok"] else rows
            problems += [f"foreign key: {r}" for r in conn.execute("PRAGMA foreign_key_check")]
            return problems

        return self._read(check)

    def backup(self, dest: str | os.PathLike[str]) -> Path:
        """Write a consistent snapshot of the database to the new file `dest` (DB-6).

        Uses SQLite's online backup, never a file copy; safe while other windows write. The
        blob folder and key file are not included (copy those folders as they are: blobs are
        immutable).
        """
        with self._lock:
            return backup_database(self._conn, Path(dest))

    def meta(self) -> dict[str, str]:
        """The store's metadata (store id, creation time, stage count, key fingerprint)."""
        with self._lock:
            return dict(self._conn.execute("SELECT key, value FROM meta").fetchall())


def _locate(location: str | os.PathLike[str] | None) -> tuple[Path, Path]:
    """(store folder, database path) for a folder, a database file, or the default."""
    loc = Path(location) if location is not None else default_location()
    if loc.is_file():
        return loc.parent, loc
    return loc, loc / DB_NAME


def _new_store(folder: Path, db_path: Path, *, n_stages: int, schema_version: int) -> bytes:
    """Create the key file and the database of a new store; returns the key."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)  # owner-only where we create it
    secret = load_or_create_secret(folder / SECRET_NAME, create=True)
    meta = {
        "store_id": secrets.token_hex(16),
        "created_at": audit.utc_now(),
        "n_stages": str(int(n_stages)),
        "secret_fingerprint": secret_fingerprint(secret),
    }
    create_database(db_path, meta, target=schema_version)
    return secret
