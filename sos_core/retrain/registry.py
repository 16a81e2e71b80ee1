"""`ModelRegistry`: every model version a store has seen, the active pointer, and rollback.

Layout, in the store's data folder (`<store>/models/`)::

    versions/<role>-<sha12>/   weights.safetensors + model.json + lineage.json (never rewritten)
    active.json                the active student (and the one-step rollback stack)
    events.jsonl               every pointer change, append-only
    gate.json                  the promotion gate configuration (see `gate`)
    runs/<run id>/report.json  one report per retraining run

Versions are content-addressed: the folder name is the role plus the first 12 hex digits of the
weights' SHA-256, a version folder is built under a temporary name and renamed into place, and
registering the same weights again returns the existing version untouched (RG-7). The active
pointer is replaced atomically (temp file, fsync, `os.replace`, fsync the folder) under an
inter-process lock, only after the gate (STYLE F). An empty registry seeds itself with the
embedded model in `resources/models/` and records it as the origin.

Thread affinity: any thread; several processes may share one registry.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from sos_core import __version__
from sos_core.errors import (
    CorruptStore,
    ModelIntegrityError,
    ModelNotFound,
    ParameterError,
    PromotionRefused,
)
from sos_core.retrain.files import (
    FileLock,
    append_line,
    read_json,
    write_json_atomic,
    write_new_file,
)
from sos_core.review.audit import utc_now
from sos_core.review.snapshot import fsync_dir

if TYPE_CHECKING:
    from sos_core.models.card import ModelCard
    from sos_core.review.store import ReviewStore

logger = logging.getLogger(__name__)

REGISTRY_DIR = "models"
VERSIONS_DIR = "versions"
POINTER_NAME = "active.json"
EVENTS_NAME = "events.jsonl"
LINEAGE_NAME = "lineage.json"
RETRAIN_LOCK = "retrain.lock"
# The names `sos_core.models.model_file` uses; that module is imported lazily (it needs torch)
# so that `import sos_core.retrain` stays cheap for the app and the CLI's --help.
CARD_NAME = "model.json"
WEIGHTS_NAME = "weights.safetensors"

Role = Literal["student", "teacher"]
AuditFn = Callable[..., None]
"""Called as `audit(actor=, action=, subject=, details=)`, e.g. `ReviewStore.record`."""
ReleaseFn = Callable[..., object]
"""Called as `release(run_id, actor=, reason=)`, e.g. `ReviewStore.release_run`."""


def embedded_models_dir() -> Path:
    """`resources/models/` (holding `student/` and `teacher/`), shipped with the app."""
    from resources import resource_path

    return resource_path("models")


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One registered version: its folder, card and lineage (`lineage.json`, read-only view)."""

    version: str
    role: str
    folder: Path
    card: ModelCard
    lineage: Mapping[str, Any]

    @property
    def decision(self) -> str:
        """The gate's word: "origin" (seeded), "promote", "reject", or "teacher" (not gated)."""
        gate = self.lineage.get("gate") or {}
        return str(gate.get("decision", "origin" if self.lineage.get("origin") else "teacher"))

    @property
    def parent(self) -> str | None:
        return self.lineage.get("parent")

    @property
    def teacher_version(self) -> str | None:
        return self.lineage.get("teacher_version")


class ModelRegistry:
    """The model registry of one folder (normally `<store folder>/models`)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        embedded: str | os.PathLike[str] | None = None,
        audit: AuditFn | None = None,
        release: ReleaseFn | None = None,
    ) -> None:
        self.root = Path(root)
        self.versions_dir = self.root / VERSIONS_DIR
        self.embedded = Path(embedded) if embedded is not None else embedded_models_dir()
        self._audit = audit
        self._release = release
        self.versions_dir.mkdir(parents=True, exist_ok=True)

    @classmethod
    def for_store(
        cls, store: ReviewStore, *, embedded: str | os.PathLike[str] | None = None
    ) -> ModelRegistry:
        """The registry in the store's data folder, auditing into the store's log; a rollback
        returns the labels the rolled-back model learned to the store's queue."""
        return cls(
            store.folder / REGISTRY_DIR,
            embedded=embedded,
            audit=store.record,
            release=store.release_run,
        )

    # --- reading ------------------------------------------------------------------------------

    def version(self, version: str) -> ModelVersion:
        """The registered version `version`. Raises `ModelNotFound`."""
        folder = self.versions_dir / version
        if (
            version.startswith(".")
            or "/" in version
            or "\\" in version
            or not (folder / LINEAGE_NAME).is_file()
        ):
            raise ModelNotFound(f"The model registry holds no version {version}.", path=folder)
        try:
            lineage = read_json(folder / LINEAGE_NAME)
        except (OSError, ValueError) as exc:
            raise CorruptStore(
                f"The lineage file of model version {version} is damaged.", path=folder
            ) from exc
        from sos_core.models.model_file import read_card

        return ModelVersion(
            version, str(lineage["role"]), folder, read_card(folder), MappingProxyType(lineage)
        )

    def versions(self, role: Role | None = None) -> list[ModelVersion]:
        """Every registered version (optionally of one role), oldest registration first."""
        found = [
            self.version(p.name)
            for p in self.versions_dir.iterdir()
            if not p.name.startswith(".") and (p / LINEAGE_NAME).is_file()
        ]
        found = [v for v in found if role is None or v.role == role]
        return sorted(found, key=lambda v: (str(v.lineage.get("registered_at", "")), v.version))

    def candidates(self) -> list[ModelVersion]:
        """Student versions the gate rejected, each with its evaluation report in its lineage."""
        return [v for v in self.versions("student") if v.decision == "reject"]

    def pointer(self) -> dict[str, Any] | None:
        """The active pointer document, None before the registry was first used."""
        path = self.root / POINTER_NAME
        if not path.exists():
            return None
        try:
            doc = read_json(path)
            str(doc["active"]), list(doc["previous"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CorruptStore(
                f"The model registry's pointer {POINTER_NAME} is damaged; restore it from a "
                "backup or roll back by hand.",
                path=path,
            ) from exc
        return dict(doc)

    def events(self) -> list[dict[str, Any]]:
        """Every pointer change (seed, promote, rollback), oldest first."""
        path = self.root / EVENTS_NAME
        if not path.exists():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def active(self) -> ModelVersion | None:
        """The active student; seeds the registry from the embedded model on first use.

        None when the registry is empty and no embedded model is installed.
        """
        doc = self.pointer()
        if doc is None:
            doc = self._seed()
        return self.version(doc["active"]) if doc is not None else None

    def active_model_dir(self) -> Path:
        """The folder a `Predictor` should load: the active version, else the embedded student."""
        active = self.active()
        return active.folder if active is not None else self.embedded / "student"

    def teacher_for(self, student: ModelVersion) -> ModelVersion | None:
        """The teacher version a student was distilled from, if the registry holds it."""
        return self.version(student.teacher_version) if student.teacher_version else None

    def retrain_lock(self) -> FileLock:
        """The lock held for the whole of a retraining run (one run at a time per registry)."""
        return FileLock(self.root / RETRAIN_LOCK)

    def retrain_running(self) -> bool:
        """True while another process (or object) holds the retraining lock."""
        lock = self.retrain_lock()
        if not lock.acquire(blocking=False):
            return True
        lock.release()
        return False

    # --- writing ------------------------------------------------------------------------------

    def register(
        self,
        candidate_dir: str | os.PathLike[str],
        *,
        role: Role,
        lineage: Mapping[str, Any],
        card_changes: Mapping[str, Any] | None = None,
        actor: str = "retrain",
    ) -> ModelVersion:
        """Copy a model folder into the registry as a new immutable version.

        The card's `version` becomes the version id; `card_changes` (e.g. `parent_version`,
        `training_data`, `metrics`) are applied to the registered card, never to the weights.
        Registering weights that are already registered returns that version unchanged.

        Raises
        ------
        ModelIntegrityError, ModelFormatError, ModelNotFound
            The candidate folder is damaged or incomplete (checked by loading it).
        """
        from sos_core.models.model_file import load_model

        src = Path(candidate_dir)
        _, card = load_model(src)  # full SHA-256 and layout check before anything is copied
        sha = card.weights_sha256
        vid = f"{role}-{sha[:12]}"
        dest = self.versions_dir / vid
        if dest.exists():
            return self._existing(vid, sha)
        partial = self.versions_dir / f".{vid}.{secrets.token_hex(4)}.partial"
        partial.mkdir()
        try:
            write_new_file(partial / WEIGHTS_NAME, (src / WEIGHTS_NAME).read_bytes())
            final = card.replace(version=vid, **dict(card_changes or {}))
            write_new_file(partial / CARD_NAME, final.to_json().encode("utf-8"))
            doc = {
                "format": 1,
                "version": vid,
                "role": role,
                "weights_sha256": sha,
                "registered_at": utc_now(),
                "source_version": card.version,
                "code_version": __version__,
                **dict(lineage),
            }
            text = json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n"
            write_new_file(partial / LINEAGE_NAME, text.encode("utf-8"))
            for f in partial.iterdir():
                f.chmod(0o444)  # a reminder that versions are never edited in place
            fsync_dir(partial)
            os.rename(partial, dest)  # atomic; fails if the same weights arrived meanwhile
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
            if dest.exists():
                return self._existing(vid, sha)
            raise
        fsync_dir(self.versions_dir)
        decision = (doc.get("gate") or {}).get("decision")
        self._record(actor, "registry.register", vid, {"role": role, "decision": decision})
        logger.info("registered model version %s (%s)", vid, role)
        return self.version(vid)

    def _existing(self, vid: str, sha: str) -> ModelVersion:
        found = self.version(vid)
        if found.card.weights_sha256 != sha:
            raise ModelIntegrityError(
                f"Model version {vid} holds other weights than its name says; the registry "
                "was changed by hand.",
                path=found.folder,
            )
        logger.info("weights already registered as %s; nothing rewritten", vid)
        return found

    def promote(self, version: str, *, actor: str, reason: str = "passed the gate") -> ModelVersion:
        """Make `version` active (after the gate); the previous active is kept for rollback.

        Raises
        ------
        PromotionRefused
            The version is a teacher, or the gate rejected it.
        ModelNotFound, ModelIntegrityError
            The version is missing or its files were damaged.
        """
        with FileLock(self.root / ".pointer.lock"):
            target = self.version(version)
            if target.role != "student":
                raise PromotionRefused(
                    f"{version} is a teacher; only a student can be the active model."
                )
            if target.decision not in ("promote", "origin"):
                raise PromotionRefused(
                    f"{version} did not pass the promotion gate, so it cannot become active."
                )
            _verify(target)  # never point at damaged files
            doc = self.pointer() or self._seed_locked()
            if doc is not None and doc["active"] == version:
                return target
            previous = [*doc["previous"], doc["active"]] if doc is not None else []
            self._write_pointer(version, previous, "promote", actor, reason, doc)
        return target

    def rollback(self, *, actor: str, reason: str = "rollback") -> ModelVersion:
        """Make the previously active version active again (one step back).

        With a store (`for_store`), the labels the rolled-back version's run had marked used are
        released first: the active model no longer knows them, so they are queued again. (In
        that order, an interruption can only leave them queued while that model is still
        active, which costs a re-learning, never a lost label.)

        Raises
        ------
        ParameterError
            There is no earlier active version.
        """
        with FileLock(self.root / ".pointer.lock"):
            doc = self.pointer()
            if doc is None or not doc["previous"]:
                raise ParameterError("There is no earlier model version to roll back to.")
            target = self.version(doc["previous"][-1])
            _verify(target)
            self._release_labels(str(doc["active"]), target.version, actor)
            self._write_pointer(
                target.version, doc["previous"][:-1], "rollback", actor, reason, doc
            )
        return target

    def _release_labels(self, leaving: str, target: str, actor: str) -> None:
        """Tell the store that the labels `leaving`'s run marked used are not learned now."""
        if self._release is None:
            return
        try:
            run_id = self.version(leaving).lineage.get("run_id")
        except (ModelNotFound, CorruptStore):  # a damaged version: rolling away from it matters
            logger.warning("rolled back from %s without knowing its run", leaving)
            return
        if run_id:
            self._release(str(run_id), actor=actor, reason=f"rollback from {leaving} to {target}")

    def _write_pointer(
        self,
        active: str,
        previous: list[str],
        action: str,
        actor: str,
        reason: str,
        old: dict[str, Any] | None,
    ) -> None:
        doc = {
            "format": 1,
            "active": active,
            "previous": previous,
            "generation": (int(old.get("generation", 0)) if old else 0) + 1,
            "updated_at": utc_now(),
            "action": action,
            "actor": actor,
            "reason": reason,
            "replaced": old["active"] if old else None,
        }
        write_json_atomic(self.root / POINTER_NAME, doc)
        append_line(self.root / EVENTS_NAME, doc)
        self._record(actor, f"registry.{action}", active, {"replaced": doc["replaced"]})
        logger.info("active model is now %s (%s)", active, action)

    def _seed(self) -> dict[str, Any] | None:
        with FileLock(self.root / ".pointer.lock"):
            return self.pointer() or self._seed_locked()

    def _seed_locked(self) -> dict[str, Any] | None:
        """Register the embedded student (and teacher) as the origin and make it active."""
        student_dir = self.embedded / "student"
        if not (student_dir / CARD_NAME).is_file():
            return None
        teacher = None
        if (self.embedded / "teacher" / CARD_NAME).is_file():
            teacher = self.register(
                self.embedded / "teacher",
                role="teacher",
                lineage={"origin": "embedded", "parent": None, "gate": {"decision": "origin"}},
                actor="registry",
            )
        student = self.register(
            student_dir,
            role="student",
            lineage={
                "origin": "embedded",
                "parent": None,
                "teacher_version": teacher.version if teacher else None,
                "gate": {"decision": "origin"},
            },
            actor="registry",
        )
        self._write_pointer(student.version, [], "seed", "registry", "embedded model", None)
        return self.pointer()

    def _record(self, actor: str, action: str, version: str, details: dict[str, Any]) -> None:
        if self._audit is not None:
            self._audit(actor=actor, action=action, subject=f"model:{version}", details=details)


def active_model_dir(
    store_folder: str | os.PathLike[str] | None = None,
    *,
    embedded: str | os.PathLike[str] | None = None,
) -> Path:
    """The model folder the app should load, without opening the review store.

    `store_folder` defaults to the store's default location (`$SOS_DATA_DIR` or the user's data
    folder). Falls back to the embedded student when the registry is empty (seeding it then).
    """
    from sos_core.review.layout import default_location

    folder = Path(store_folder) if store_folder is not None else default_location()
    return ModelRegistry(folder / REGISTRY_DIR, embedded=embedded).active_model_dir()


def _verify(version: ModelVersion) -> None:
    """Load the version once: SHA-256 and architecture checks (MW-2, MW-4) before pointing at it."""
    from sos_core.models.model_file import load_model

    load_model(version.folder)
