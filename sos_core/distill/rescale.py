"""Scale augmentation for students, resampled from the native image.

On cephalograms the student's gap to its teacher grows as the SOS box gets smaller, although
the boxes of the phantom differ by only 20-26 native pixels (fresh set, session 15): the
teacher's crop brings every box to one size, the student meets each stage at the few sizes the
training set happens to hold. Rescaling each training image by a random factor shows it every
stage at more sizes. Measured over three seeds (`scale_jitter` 0.15, benchmarks/RESULTS.md
"scale jitter for the student"): no gain, and the small-box gap stayed, so the preset does not
use it.

Why from the native image: the model input is already the native image interpolated once
(`sos_core.preprocess.letterbox`, bilinear). Rescaling that input would interpolate twice and
blur the one- or two-pixel gap that tells the stage in every training image and in no
validation image (docs/training.md, "Why the student looks the way it does"). Here each image
is sampled once from its native pixels, with the same bilinear kernel and pixel-centre
convention as `letterbox`, so that a factor of 1 gives back the model input.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

from sos_core.distill.dataset import LoadedCases


def random_factors(n: int, amount: float, gen: torch.Generator) -> torch.Tensor:
    """n scale factors, log-uniform within 1/(1 + amount) .. 1 + amount."""
    span = math.log1p(amount)
    return torch.exp((torch.rand(n, generator=gen) * 2 - 1) * span)


def rescale_from_native(
    cases: LoadedCases, index: np.ndarray, boxes: torch.Tensor, factors: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Model inputs of cases `index`, each scaled by its factor about the input's centre.

    `boxes` (len(index) x 4, model-input pixels) move with the content. Where the scaled image
    leaves the square it is cut off; where it does not fill it, the border is 0 (the
    letterbox's black), as for a smaller image.
    """
    size = cases.inputs.shape[-1]
    centre = size / 2
    out = torch.zeros(len(index), 1, size, size)
    coords = torch.arange(size, dtype=torch.float64) + 0.5  # output pixel centres
    for k, (i, z) in enumerate(zip(index.tolist(), factors.tolist(), strict=True)):
        native = torch.from_numpy(np.asarray(cases.natives[i], np.float32))
        lb = cases.letterboxes[i]
        h, w = native.shape
        # input = native * scale + pad, then scaled by z about the centre.
        s = lb.scale * z
        tx, ty = centre + z * (lb.pad_x - centre), centre + z * (lb.pad_y - centre)
        src_x, src_y = (coords - tx) / s, (coords - ty) / s  # native coordinates, edges at 0, w
        gx = (2 * src_x / w - 1).float()
        gy = (2 * src_y / h - 1).float()
        grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)
        # "border" repeats the edge pixel like cv2.resize; outside the image is then set to 0.
        sampled = F.grid_sample(
            native[None, None],
            grid[None],
            mode="bilinear",
            padding_mode="border",
            align_corners=False,
        )[0, 0]
        inside_x = ((src_x >= 0) & (src_x < w)).float()
        inside_y = ((src_y >= 0) & (src_y < h)).float()
        out[k, 0] = sampled * (inside_y[:, None] * inside_x[None, :])
    z = factors.to(boxes.dtype)[:, None]
    return out, centre + z * (boxes - centre)
