"""Tissue values in Hounsfield-like units shared by the anatomy and the renderers."""

from __future__ import annotations

AIR = -1000.0
FAT = -90.0
BRAIN = 35.0
SOFT = 50.0
PULP = 60.0
DISC = 90.0
CARTILAGE = 130.0
AIR_CELLS = 150.0  # mastoid cells: bone and air below the resolution
MARROW = 560.0
DIPLOE = 700.0
CORTEX = 1450.0
DENSE = 1100.0  # petrous bone: dense, but riddled with the inner-ear spaces and air cells
DENTIN = 1750.0
ENAMEL = 2600.0
METAL = 6000.0  # brackets; CBCT output is clipped at HU_MAX

BONE_THRESHOLD = 250.0  # above this a voxel counts as bone (for carving gaps and plates)
HU_MIN = -1024.0
HU_MAX = 3071.0
