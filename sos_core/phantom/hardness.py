"""Is the phantom the right problem? A small CNN must read the stage from the SOS crop, and must
not read it from the rest of the image (the SOS box blanked out).

Used by the fast test (tiny sizes) and by `benchmarks/phantom_hardness.py` (fuller). Torch is
imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from sos_core.phantom.anatomy import build_head
from sos_core.phantom.dataset import case_seed
from sos_core.phantom.params import draw_subject
from sos_core.phantom.render_slice import TILT_RESIDUAL, band_centre, render_slice
from sos_core.phantom.stages import N_STAGES

logger = logging.getLogger(__name__)

WINDOW_HU = (-350.0, 1900.0)


@dataclass(frozen=True, slots=True)
class HardnessData:
    """crops (N, c, c) and blanked full images (N, s, s) in [0, 1], float32; stages (N,); ages."""

    crops: np.ndarray
    blanked: np.ndarray
    stages: np.ndarray
    ages: np.ndarray


def _window(hu: np.ndarray) -> np.ndarray:
    lo, hi = WINDOW_HU
    return np.clip((hu - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def make_data(
    n: int,
    seed: int,
    *,
    size: int = 256,
    spacing: float = 0.9,
    crop_px: int = 32,
    full_px: int = 64,
    crop_spacing: float | None = None,
) -> HardnessData:
    """Render `n` balanced cases: the SOS-box crop and the full image with the box blanked.

    The crop is cut from the rendered image and resized to `crop_px`, or, with `crop_spacing`,
    rendered directly as a `crop_px` square at that spacing centred on the band (cheaper when
    the full image is rendered small). The blanked image (box filled with the image's median)
    is resized to `full_px`.
    """
    crops, blanked, stages, ages = [], [], [], []
    for i in range(n):
        p = draw_subject(case_seed(seed, i))
        head = build_head(p, tilt_residual=TILT_RESIDUAL)
        img = render_slice(p, size=size, spacing=spacing, head=head)
        win = _window(img.image)
        x0, y0, x1, y1 = img.sos_box
        r0, r1 = max(0, int(np.floor(y0))), min(win.shape[0], int(np.ceil(y1)))
        c0, c1 = max(0, int(np.floor(x0))), min(win.shape[1], int(np.ceil(x1)))
        if crop_spacing is None:
            crops.append(
                cv2.resize(win[r0:r1, c0:c1], (crop_px, crop_px), interpolation=cv2.INTER_AREA)
            )
        else:
            centre = band_centre(head)
            crop = render_slice(
                p,
                size=crop_px,
                spacing=crop_spacing,
                center_yz_mm=(float(centre[1]), float(centre[2])),
                head=head,
            )
            crops.append(_window(crop.image))
        full = win.copy()
        full[r0:r1, c0:c1] = float(np.median(win))
        blanked.append(cv2.resize(full, (full_px, full_px), interpolation=cv2.INTER_AREA))
        stages.append(p.stage)
        ages.append(p.age)
    return HardnessData(
        np.stack(crops),
        np.stack(blanked),
        np.asarray(stages, np.int64),
        np.asarray(ages, np.float32),
    )


def logistic_eval(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    l2: float = 1e-2,
    steps: int = 250,
) -> float:
    """Multinomial logistic regression on standardised pixels (numpy, Adam); test accuracy."""
    xt = x_train.reshape(len(x_train), -1).astype(np.float32)
    xe = x_test.reshape(len(x_test), -1).astype(np.float32)
    mu, sd = xt.mean(0), xt.std(0) + 1e-3
    xt, xe = (xt - mu) / sd, (xe - mu) / sd
    onehot = np.eye(N_STAGES, dtype=np.float32)[y_train]
    w = np.zeros((xt.shape[1] + 1, N_STAGES), np.float32)
    xt1 = np.hstack([xt, np.ones((len(xt), 1), np.float32)])
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t in range(1, steps + 1):
        # einsum, not BLAS: OpenBLAS threads spin badly on a busy 2-core machine for these
        # tiny products (measured 6 s instead of 0.2 s).
        z = np.einsum("ij,jk->ik", xt1, w)
        z -= z.max(1, keepdims=True)
        prob = np.exp(z)
        prob /= prob.sum(1, keepdims=True)
        grad = np.einsum("ij,ik->jk", xt1, prob - onehot) / np.float32(len(xt1))
        grad[:-1] += np.float32(2 * l2) * w[:-1]
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad * grad
        w -= np.float32(0.05) * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    pred = np.einsum("ij,jk->ik", np.hstack([xe, np.ones((len(xe), 1), np.float32)]), w).argmax(1)
    return float(np.mean(pred == y_test))


def train_eval(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    epochs: int = 15,
    seed: int = 0,
    width: int = 16,
) -> float:
    """Train a small CNN (3 conv blocks, global average pooling, linear) briefly; test accuracy.

    Inputs are standardised with the training mean and SD; AdamW with a one-cycle schedule.
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(2 * width, 4 * width, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, N_STAGES),
    )  # fmt: skip
    mu, sd = float(x_train.mean()), float(x_train.std()) + 1e-6
    xt = torch.from_numpy((x_train[:, None] - mu) / sd)
    yt = torch.from_numpy(y_train)
    batch = 32
    steps = epochs * ((len(xt) + batch - 1) // batch)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=gen)
        for k in range(0, len(xt), batch):
            idx = order[k : k + batch]
            loss = nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    with torch.no_grad():
        pred = net(torch.from_numpy((x_test[:, None] - mu) / sd)).argmax(1).numpy()
    return float(np.mean(pred == y_test))


def age_only_accuracy(
    ages_train: np.ndarray, y_train: np.ndarray, ages_test: np.ndarray, y_test: np.ndarray
) -> float:
    """Accuracy of the best single-feature rule (nearest class mean age): what age alone tells."""
    means = np.array(
        [
            ages_train[y_train == s].mean() if np.any(y_train == s) else np.inf
            for s in range(N_STAGES)
        ]
    )
    pred = np.argmin(np.abs(ages_test[:, None] - means[None, :]), axis=1)
    return float(np.mean(pred == y_test))
