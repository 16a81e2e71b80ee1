"""PyInstaller's entry script for SOS Review (the `sos-review` console script's frozen twin).

Retraining runs in a `spawn` child process; a frozen app starts such a child by running its own
executable again, and `freeze_support()` must intercept that before the app itself starts (else
the child would open a second main window). It is a no-op outside a frozen app.

The app's prediction process (`sos_core.inference.predictor_process`) is this executable again
with `--prediction-process`: there is no `python -m` inside a bundle.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from sos_core.inference.predictor_process import FROZEN_FLAG

    if sys.argv[1:2] == [FROZEN_FLAG]:  # the app started its prediction process
        from sos_core.inference.predictor_process import serve_stdio

        sys.exit(serve_stdio())
    from sos_desktop.launch import main

    sys.exit(main())
