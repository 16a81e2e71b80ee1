"""SOS Review core: imaging, phantom, models, Grad-CAM, distillation, inference, review store.

Qt-free and usable from scripts. Heavy modules (torch) are imported by the submodules that need
them, never here.
"""

from __future__ import annotations

__version__ = "0.1.0"
