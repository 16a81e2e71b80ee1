"""`sos retrain`, `sos audit verify` and `sos registry ...`: controlled retraining from the CLI.

Exit statuses (DESIGN.md): 0 done (a retrain that promoted, rejected, or found nothing to
learn; a clean audit log), 2 an input could not be used (no store, a broken audit chain, no
locked set, another run in progress, nothing to roll back to), 1 an internal fault. Only
`sos registry locked --import` creates a store (the locked set is fixed when a store is set up);
every other command refuses a folder that holds none.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sos_core.review.store import ReviewStore

EXIT_OK = 0
EXIT_BAD_INPUT = 2
_DONE = ("promoted", "rejected", "nothing_to_learn")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "retrain",
        help="fine-tune teacher and student on new expert labels; promote only past the gate",
        description="Train on the review store's queue (locked validation cases excluded), "
        "starting from the active models; score active and candidate on the locked validation "
        "set; promote the candidate only if the gate passes, else keep it as a rejected "
        "candidate with its report.",
    )
    _store_arg(p)
    p.add_argument("--epochs", type=int, help="student epochs (default 15)")
    p.add_argument("--teacher-epochs", type=int, help="teacher epochs (default 10)")
    p.add_argument("--batch-size", type=int, help="batch size (default 16)")
    p.add_argument("--lr", type=float, help="fine-tuning learning rate (default 1e-3)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--json", action="store_true", help="print the run report as JSON")
    p.set_defaults(func=run_retrain)

    p = sub.add_parser("audit", help="check the review store's audit log")
    audit_sub = p.add_subparsers(dest="audit_command", metavar="ACTION")
    audit_sub.required = True
    v = audit_sub.add_parser("verify", help="recompute the audit hash chain (exit 2 if broken)")
    _store_arg(v)
    v.set_defaults(func=run_audit_verify)

    p = sub.add_parser("registry", help="list model versions, roll back, see the locked set")
    reg_sub = p.add_subparsers(dest="registry_command", metavar="ACTION")
    reg_sub.required = True
    for name, text, func in (
        ("list", "every model version, the active one marked", run_registry_list),
        ("rollback", "make the previously active model active again", run_registry_rollback),
        ("locked", "show, import or grow the locked validation set", run_registry_locked),
        ("gate", "show the promotion gate configuration", run_registry_gate),
    ):
        q = reg_sub.add_parser(name, help=text)
        _store_arg(q)
        q.add_argument("--json", action="store_true", help="print JSON")
        q.set_defaults(func=func)
        if name == "rollback":
            q.add_argument("--reviewer", default="cli", help="who rolls back (audit log)")
        if name == "locked":
            q.add_argument(
                "--import",
                dest="import_dir",
                help="lock a labelled dataset folder (creates the store if the folder has none)",
            )
            q.add_argument("--split", action="append", help="manifest split(s) to import")
            q.add_argument("--grow", nargs="+", metavar="CASE_ID", help="lock more store cases")
            q.add_argument("--reason", default="", help="why the set grows (audit log)")
            q.add_argument("--reviewer", help="who vouches for the change (required to change)")


def _store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", help="review store folder (default: $SOS_DATA_DIR or user data)")


def _open(args: argparse.Namespace) -> ReviewStore:
    from sos_core.review.store import ReviewStore

    return ReviewStore.open(args.store, create=False)


def _open_for_import(args: argparse.Namespace) -> tuple[ReviewStore, bool]:
    """The store, created if the folder holds none: the locked set is fixed when a store is
    set up, so importing one is how a store is started from the command line. Returns
    (store, created). Other commands never create a store (a mistyped --store is refused)."""
    from sos_core.distill.dataset import read_manifest
    from sos_core.errors import NotAStore
    from sos_core.review.store import ReviewStore

    read_manifest(args.import_dir)  # a wrong folder is refused before a store is made for it
    try:
        return ReviewStore.open(args.store, create=False), False
    except NotAStore:
        # create=True still refuses a foreign or damaged file: it only creates where no
        # database file exists at all.
        return ReviewStore.open(args.store, create=True), True


def _say(text: str) -> None:
    print(text)  # noqa: T201 - the CLI's own output


def _err(text: str) -> None:
    print(f"sos: {text}", file=sys.stderr)  # noqa: T201


def run_retrain(args: argparse.Namespace) -> int:
    from sos_core.retrain.records import RetrainOptions
    from sos_core.retrain.registry import ModelRegistry
    from sos_core.retrain.run import retrain

    changes = {
        k: v
        for k, v in {
            "student_epochs": args.epochs,
            "teacher_epochs": args.teacher_epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "seed": args.seed,
            "device": args.device,
        }.items()
        if v is not None
    }
    from tqdm import tqdm

    # A retrain runs for minutes on a CPU: a bar on a terminal, nothing in a captured stream.
    with (
        _open(args) as store,
        tqdm(total=100, desc="retrain", file=sys.stderr, disable=not sys.stderr.isatty(),
             bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} elapsed, {remaining} left")
        as bar,
    ):  # fmt: skip
        report = retrain(
            store,
            ModelRegistry.for_store(store),
            options=RetrainOptions(actor="cli").replace(**changes),
            progress=lambda fraction: bar.update(max(0, round(fraction * 100) - bar.n)),
        )
    done = report.status in _DONE
    if args.json:
        _say(json.dumps(report.to_dict(), indent=2, default=str))
    elif done:
        _say(report.message)
    else:
        _err(report.message)
    return EXIT_OK if done else EXIT_BAD_INPUT


def run_audit_verify(args: argparse.Namespace) -> int:
    with _open(args) as store:
        result = store.verify_audit()
    if result.ok:
        _say(f"The audit log is intact ({result.n_entries} entries).")
        return EXIT_OK
    _err(
        f"The audit log is broken at entry {result.first_broken} of {result.n_entries}; "
        "entries from there on cannot be trusted."
    )
    return EXIT_BAD_INPUT


def run_registry_list(args: argparse.Namespace) -> int:
    from sos_core.retrain.registry import ModelRegistry

    with _open(args) as store:
        registry = ModelRegistry.for_store(store)
        active = registry.active()
        rows = [_version_row(v, active.version if active else None) for v in registry.versions()]
    if args.json:
        _say(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        _say("The model registry is empty and no embedded model is installed.")
    for r in rows:
        acc = f"{r['locked_accuracy']:.3f}" if r["locked_accuracy"] is not None else "-"
        mark = "*" if r["active"] else " "
        _say(
            f"{mark} {r['version']:<22} {r['role']:<8} {r['decision']:<8} "
            f"locked acc {acc:<6} parent {r['parent'] or '-'}  {r['registered_at']}"
        )
    return EXIT_OK


def _version_row(v: Any, active: str | None) -> dict[str, Any]:
    locked = (v.lineage.get("evaluation") or {}).get("candidate") or {}
    return {
        "version": v.version,
        "role": v.role,
        "decision": v.decision,
        "active": v.version == active,
        "parent": v.parent,
        "teacher": v.teacher_version,
        "registered_at": v.lineage.get("registered_at", ""),
        "locked_accuracy": (locked.get("overall") or {}).get("accuracy"),
    }


def run_registry_rollback(args: argparse.Namespace) -> int:
    from sos_core.retrain.registry import ModelRegistry

    with _open(args) as store:
        target = ModelRegistry.for_store(store).rollback(actor=args.reviewer)
        waiting = len(store.queue())  # the rolled-back model's labels are queued again
    _say(
        f"The active model is now {target.version}; {waiting} labelled case(s) wait in the "
        "retraining queue."
    )
    return EXIT_OK


def run_registry_locked(args: argparse.Namespace) -> int:
    from sos_core.errors import ParameterError
    from sos_core.retrain.dataset_import import import_locked_set
    from sos_core.retrain.locked_set import grow_locked_set, load_locked_set

    if (args.import_dir or args.grow) and not args.reviewer:
        raise ParameterError("Changing the locked validation set needs --reviewer.")
    store, created = _open_for_import(args) if args.import_dir else (_open(args), False)
    with store:
        if args.import_dir or args.grow:
            if args.import_dir:
                splits = tuple(args.split) if args.split else ("test",)
                import_locked_set(store, args.import_dir, reviewer=args.reviewer, splits=splits)
            if args.grow:
                grow_locked_set(store, args.grow, actor=args.reviewer, reason=args.reason)
        locked = load_locked_set(store)
    info = {
        "store_created": created,
        "cases": len(locked),
        "generation": locked.generation,
        "manifest_hash": locked.manifest_hash,
        "case_ids": sorted(locked.case_ids),
    }
    if args.json:
        _say(json.dumps(info, indent=2))
        return EXIT_OK
    if created:
        _say(f"Created a new review store in {store.folder}.")
    if not len(locked):
        _say("No locked validation set is fixed yet; import one with --import DIR.")
    else:
        _say(
            f"Locked validation set: {info['cases']} case(s), generation {info['generation']}, "
            f"manifest {locked.manifest_hash[:16]}."
        )
    return EXIT_OK


def run_registry_gate(args: argparse.Namespace) -> int:
    from sos_core.retrain.gate import load_gate_config
    from sos_core.retrain.registry import REGISTRY_DIR

    with _open(args) as store:
        config = load_gate_config(store.folder / REGISTRY_DIR)
    if args.json:
        _say(json.dumps(config.to_dict(), indent=2))
        return EXIT_OK
    _say(f"Promotion gate version {config.version} (hash {config.hash[:16]}):")
    for name, margin in config.margins.items():
        _say(f"  {name:<16} may be worse by at most {margin:.3f}")
    for name, margin in config.stage_margins.items():
        _say(f"  per-stage {name:<6} may be worse by at most {margin:.3f}")
    _say(
        f"  at least {config.min_locked_cases} locked cases; stages with fewer than "
        f"{config.min_stage_support} are not judged per stage"
    )
    return EXIT_OK
