"""PyInstaller's entry script for SOS Review (the `sos-review` console script's frozen twin).

Retraining runs in a `spawn` child process; a frozen app starts such a child by running its own
executable again, and `freeze_support()` must intercept that before the app itself starts (else
the child would open a second main window). It is a no-op outside a frozen app.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from sos_desktop.app import main

    sys.exit(main())
