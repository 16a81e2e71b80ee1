"""Run by torchrun in the DDP test: train, then write this rank's final-weights digest."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sos_core.distill.config import load_config
from sos_core.distill.training import train

if __name__ == "__main__":
    config = load_config(sys.argv[1])
    result = train(config)
    Path(sys.argv[2], f"rank{os.environ['RANK']}.sha").write_text(result.state_sha256)
