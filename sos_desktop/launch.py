"""The `sos-review` console script: start the prediction process, then the app.

Kept free of Qt, pyqtgraph and torch so that the model's prediction process
(`sos_desktop.predictor_loader.start_early`) is on its way before this process spends its first
second importing Qt: the two then load side by side on two cores.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

EARLY_ENV = "SOS_PREDICTOR_PROCESS"  # "0": load the model in the app's own process


def wants_early_predictor(argv: Sequence[str]) -> bool:
    """Not for --help or --self-test, and not when switched off."""
    if {"-h", "--help", "--self-test"} & set(argv):
        return False
    return os.environ.get(EARLY_ENV, "1") != "0"


def start_prediction_process(argv: Sequence[str]) -> None:
    """First thing at launch: the model's process starts loading (see the module docstring)."""
    if wants_early_predictor(argv):
        from sos_desktop.predictor_loader import start_early

        start_early()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    start_prediction_process(args)
    from sos_desktop.app import main as app_main

    return app_main(args)


if __name__ == "__main__":
    sys.exit(main())
