"""Imaging effects shared by the slice and volume renderers: texture, cupping, metal streaks,
system blur, correlated noise and the cylindrical field of view. All work in place on HU arrays.
"""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np

from sos_core.phantom.materials import AIR, BONE_THRESHOLD, HU_MAX, HU_MIN

logger = logging.getLogger(__name__)

CUPPING_RADIUS_MM = 95.0
TEXTURE_HU = 90.0


def gaussian_kernel(sigma_px: float) -> np.ndarray:
    """Normalised 1-D Gaussian kernel (float32); a delta for tiny sigma."""
    if sigma_px < 0.15:
        return np.ones(1, np.float32)
    half = max(1, int(math.ceil(3.0 * sigma_px)))
    x = np.arange(-half, half + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma_px) ** 2)
    return (k / k.sum()).astype(np.float32)


def blur(arr: np.ndarray, sigmas_px: tuple[float, ...]) -> np.ndarray:
    """Separable Gaussian blur of a 2-D or 3-D float32 array (edges replicated)."""
    if arr.ndim == 2:
        ky, kx = gaussian_kernel(sigmas_px[0]), gaussian_kernel(sigmas_px[1])
        return cv2.sepFilter2D(arr, -1, kx, ky, borderType=cv2.BORDER_REPLICATE)
    nz, ny, nx = arr.shape
    kz, ky, kx = (gaussian_kernel(s) for s in sigmas_px)
    out = np.empty_like(arr)
    for i in range(nz):
        out[i] = cv2.sepFilter2D(arr[i], -1, kx, ky, borderType=cv2.BORDER_REPLICATE)
    if kz.size > 1:
        flat = out.reshape(nz, ny * nx)
        # Blur along z in column blocks: OpenCV images are limited in width.
        step = 16384
        for c0 in range(0, ny * nx, step):
            block = np.ascontiguousarray(flat[:, c0 : c0 + step])
            flat[:, c0 : c0 + step] = cv2.sepFilter2D(
                block, -1, np.ones(1, np.float32), kz, borderType=cv2.BORDER_REPLICATE
            )
    return out


def noise_field(
    shape: tuple[int, ...], sd: float, sigmas_px: tuple[float, ...], rng: np.random.Generator
) -> np.ndarray:
    """Correlated Gaussian noise with standard deviation `sd` (blurred white noise)."""
    white = rng.standard_normal(shape, dtype=np.float32)
    gain = 1.0
    for s in sigmas_px:
        k = gaussian_kernel(s)
        gain *= float(np.sum(k.astype(np.float64) ** 2))
    out = blur(white, sigmas_px)
    out *= np.float32(sd / math.sqrt(gain))
    return out


def white_noise(
    shape: tuple[int, ...], sd: float, sigmas_px: tuple[float, ...], rng: np.random.Generator
) -> np.ndarray:
    """White noise scaled so that after `blur(..., sigmas_px)` its standard deviation is `sd`."""
    gain = 1.0
    for s in sigmas_px:
        gain *= float(np.sum(gaussian_kernel(s).astype(np.float64) ** 2))
    out = rng.standard_normal(shape, dtype=np.float32)
    out *= np.float32(sd / math.sqrt(gain))
    return out


def add_texture(img: np.ndarray, spacing: tuple[float, ...], rng: np.random.Generator) -> None:
    """Trabecular texture in cancellous bone: smooth noise where bone is not cortical.

    For volumes the noise is drawn at half resolution and added only at the (few) marrow
    voxels, 2 x 2 x 2 voxels per noise sample; the system blur smooths it afterwards.
    """
    mask = (img > BONE_THRESHOLD) & (img < 1000.0)
    if img.ndim == 2:
        # Noise on a grid of about 1.4 mm, linearly interpolated: a smooth texture for a
        # quarter of the random numbers (and no blur) at the usual 0.9 mm pixels.
        rows, cols = img.shape
        coarse = (max(2, round(rows * spacing[0] / 1.4)), max(2, round(cols * spacing[1] / 1.4)))
        small = rng.standard_normal(coarse, dtype=np.float32) * np.float32(TEXTURE_HU)
        tex = cv2.resize(small, (cols, rows), interpolation=cv2.INTER_LINEAR)
        np.add(img, tex, out=img, where=mask)
        return
    half = tuple((n + 1) // 2 for n in img.shape)
    small = rng.standard_normal(half, dtype=np.float32) * np.float32(TEXTURE_HU)
    idx = np.flatnonzero(mask)
    z, y, x = np.unravel_index(idx, img.shape)
    flat = img.reshape(-1)
    flat[idx] += small[z // 2, y // 2, x // 2]


def cupping(img: np.ndarray, r2: np.ndarray, strength: float) -> None:
    """Beam-hardening cupping: lower values towards the head axis (r2: squared distance, mm^2)."""
    if strength <= 0:
        return
    cup = np.float32(strength) * np.maximum(
        np.float32(0), 1.0 - r2 / np.float32(CUPPING_RADIUS_MM**2)
    )
    np.subtract(img, cup, out=img, where=img > -500.0)


def streak_lobes(rng: np.random.Generator, n_metal: int) -> np.ndarray:
    """Random streak lobes per metal object: (n_metal, 6, 3) of (angle, width, sign*weight)."""
    ang = rng.uniform(-math.pi, math.pi, (n_metal, 6))
    ang[:, :3] = math.pi / 2 * rng.choice([-1.0, 1.0], (n_metal, 3)) + rng.normal(
        0, 0.12, (n_metal, 3)
    )
    width = rng.uniform(0.02, 0.06, (n_metal, 6))
    weight = rng.uniform(0.4, 1.0, (n_metal, 6)) * rng.choice([-1.0, 1.0], (n_metal, 6))
    return np.stack([ang, width, weight], axis=-1)


def streak_patterns(
    x: np.ndarray, y: np.ndarray, metal: np.ndarray, lobes: np.ndarray, strength: float
) -> np.ndarray:
    """Per metal object, its in-plane streak pattern (HU) on axial coordinates x, y.

    Streaks radiate from each metal object along a few random directions (half of them near the
    antero-posterior axis, so they show on sagittal slices) and fade with distance.
    Returns an array of shape (k, *broadcast(x, y).shape).
    """
    shape = np.broadcast(x, y).shape
    out = np.zeros((len(metal), *shape), np.float32)
    two_pi = np.float32(2 * math.pi)
    for i, (m, lb) in enumerate(zip(metal, lobes, strict=True)):
        dx, dy = x - np.float32(m[0]), y - np.float32(m[1])
        theta = np.arctan2(dy, dx).astype(np.float32)
        r = np.sqrt(dx * dx + dy * dy)
        g = np.zeros(shape, np.float32)
        for ang, width, weight in lb:
            d = np.mod(theta - np.float32(ang) + np.float32(math.pi), two_pi) - np.float32(math.pi)
            g += np.float32(weight) * np.exp(-0.5 * (d / np.float32(width)) ** 2)
        out[i] = np.float32(strength) * g / (1.0 + r / 25.0)
    return out


def streak_falloff(z: np.ndarray, metal_z: np.ndarray) -> np.ndarray:
    """(len(z), k) weight of each metal object's streaks on axial planes at heights z (mm)."""
    dz = np.abs(np.asarray(z, dtype=np.float64)[:, None] - metal_z[None, :]) / 2.5
    return np.where(dz < 1.0, np.cos(np.minimum(dz, 1.0) * math.pi / 2), 0.0).astype(np.float32)


def fov_mask_2d(
    y: np.ndarray, z: np.ndarray, plane_x: float, diameter: float | None, height: float | None
) -> np.ndarray | None:
    """Pixels of a sagittal slice outside a cylindrical FOV centred on the scanner axis."""
    if diameter is None and height is None:
        return None
    out = np.zeros(np.broadcast(y, z).shape, bool)
    if diameter is not None:
        out |= (plane_x**2 + y**2) > (diameter / 2) ** 2
    if height is not None:
        out |= np.abs(z) > height / 2
    return out


def finish(img: np.ndarray, outside: np.ndarray | None) -> None:
    """Set outside-FOV voxels to air and clip to the CT range (in place)."""
    if outside is not None:
        img[outside] = AIR
    np.clip(img, HU_MIN, HU_MAX, out=img)
