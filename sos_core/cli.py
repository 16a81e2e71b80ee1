"""`sos`: the Qt-free command line.

Exit statuses (DESIGN.md): 0 done, 2 an input could not be used (one sentence on stderr, no
traceback), 1 an internal fault. Each subcommand lives in `sos_core.commands.<name>` with
`register(subparsers)`; heavy imports stay inside the commands' run functions so `--help` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from sos_core import __version__
from sos_core.errors import SosError

logger = logging.getLogger("sos_core.cli")

# Order is the order shown by `sos --help`.
COMMAND_MODULES = (
    "sos_core.commands.inspect",
    "sos_core.commands.predict",
    "sos_core.commands.phantom",
    "sos_core.commands.train",
    "sos_core.commands.evaluate",
    "sos_core.commands.retrain",
)

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2

# Commands that only read their inputs and write their own output. Once that output is flushed
# the process may end at once: tearing the interpreter down after `import torch` (module and
# thread-pool finalisers) takes 0.7 s here, a quarter of a one-image `sos predict`. Commands
# that write a review store or training files end normally.
FAST_EXIT_COMMANDS = frozenset({"predict", "info", "inspect"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sos",
        description="SOS Review: stage spheno-occipital synchondrosis fusion from CBCT and "
        "cephalograms. Not a clinical device.",
    )
    parser.add_argument("--version", action="version", version=f"sos {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # a command not built yet; the others still work
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit status (for tests and `python -m sos_core.cli`)."""
    return _dispatch(build_parser().parse_args(argv))


def console_main() -> NoReturn:
    """The `sos` console script: `main`, then a fast exit for the read-only commands."""
    args = build_parser().parse_args()
    code = _dispatch(args)
    if args.command in FAST_EXIT_COMMANDS:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _dispatch(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except SosError as exc:
        print(f"sos: {exc}", file=sys.stderr)  # noqa: T201 - the CLI's own output
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("sos: interrupted.", file=sys.stderr)  # noqa: T201
        return 130
    except Exception:  # noqa: BLE001 - the last boundary: report, never crash silently
        logger.exception("internal fault")
        print(  # noqa: T201
            "sos: an internal fault occurred; please report it with the log above.",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    console_main()
