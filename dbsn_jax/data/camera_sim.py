"""A small camera pipeline that gives real-photo-like noise with a known level.

clean sRGB `(H, W, 3)` -> linear sensor values (inverse colour matrix) -> RGGB Bayer
mosaic -> Poisson-Gaussian sensor noise, var = a * x + b on the [0, 1] scale ->
bilinear demosaicking -> colour matrix -> clip -> 8 bits. The same pipeline without
noise gives the ground truth. Demosaicking correlates the noise in space, the colour
matrix across channels, and the variance grows with intensity, as in a camera's JPEGs;
unlike real photos, its level is known (`std(noisy - truth)` per photo).
"""
import json
import os
from typing import Dict, Tuple

import numpy as np
from scipy import ndimage

from dbsn_jax.data import image_io, sources

# A typical sensor-to-sRGB colour matrix (rows sum to 1, negative off-diagonals).
CCM = np.array([[1.60, -0.45, -0.15],
                [-0.25, 1.55, -0.30],
                [-0.05, -0.55, 1.60]])

_KERNEL_RB = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 4.0
_KERNEL_G = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]]) / 4.0


def bayer_masks(h: int, w: int) -> np.ndarray:
  """`(H, W, 3)` 0/1 masks of the RGGB pattern: R at (0, 0), G at (0, 1) and (1, 0)."""
  m = np.zeros((h, w, 3))
  m[0::2, 0::2, 0] = 1
  m[0::2, 1::2, 1] = 1
  m[1::2, 0::2, 1] = 1
  m[1::2, 1::2, 2] = 1
  return m


def demosaic(raw: np.ndarray) -> np.ndarray:
  """Bilinear demosaicking of an RGGB mosaic `(H, W)` -> `(H, W, 3)`."""
  masks = bayer_masks(*raw.shape)
  out = np.empty(raw.shape + (3,))
  for c, kernel in enumerate((_KERNEL_RB, _KERNEL_G, _KERNEL_RB)):
    out[..., c] = ndimage.convolve(raw * masks[..., c], kernel, mode="mirror")
  return out


def _render(raw: np.ndarray) -> np.ndarray:
  """Mosaic -> demosaic -> colour matrix -> [0, 1]."""
  return np.clip(demosaic(raw) @ CCM.T, 0.0, 1.0)


def simulate(clean: np.ndarray, a: float, b: float,
             rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
  """(noisy, truth), both uint8 `(H, W, 3)`, from a clean float image in [0, 1].

  `a` (shot noise gain) and `b` (read noise variance) act on the [0, 1] sensor scale;
  H and W are cropped to even sizes so the mosaic tiles the image.
  """
  if clean.ndim != 3 or clean.shape[-1] != 3:
    raise ValueError(f"camera_sim needs an RGB image (H, W, 3), got shape {clean.shape}")
  if a < 0 or b < 0:
    raise ValueError(f"camera_sim needs a >= 0 and b >= 0, got a={a}, b={b}")
  h, w = (clean.shape[0] // 2) * 2, (clean.shape[1] // 2) * 2
  if h < 2 or w < 2:
    raise ValueError(f"camera_sim needs an image of at least 2x2, got {clean.shape[:2]}")
  linear = np.clip(np.asarray(clean[:h, :w], np.float64) @ np.linalg.inv(CCM).T, 0.0, 1.0)
  raw = np.sum(linear * bayer_masks(h, w), -1)
  if a > 0:
    shot = rng.poisson(raw / a) * a
  else:
    shot = raw
  noisy_raw = shot + rng.normal(size=raw.shape) * np.sqrt(b)
  to8 = lambda v: np.round(v * 255.0).astype(np.uint8)  # noqa: E731
  return to8(_render(noisy_raw)), to8(_render(raw))


def noise_std(noisy: np.ndarray, truth: np.ndarray) -> float:
  """std(noisy - truth) over all pixels and channels, 0-255 scale (the photo's level)."""
  return float(np.std(noisy.astype(np.float64) - truth.astype(np.float64)))


def write_set(source: str, out_dir: str, a: float, b: float, seed: int = 0,
              limit: int = 0) -> Dict[str, float]:
  """Simulate every photo of `source` into OUT/noisy, OUT/clean and OUT/noise_std.json;
  returns {name: noise std (0-255)}."""
  photos = sources.load(source, 3, 0, limit or None)
  levels = {}
  for sub in ("noisy", "clean"):
    os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
  for i, (name, x) in enumerate(zip(photos.names, photos.images)):
    noisy, truth = simulate(x, a, b, np.random.default_rng(seed + i))
    image_io.write(os.path.join(out_dir, "noisy", name + ".png"), noisy)
    image_io.write(os.path.join(out_dir, "clean", name + ".png"), truth)
    levels[name] = noise_std(noisy, truth)
  with open(os.path.join(out_dir, "noise_std.json"), "w") as f:
    json.dump({"a": a, "b": b, "seed": seed, "noise_std": levels}, f, indent=1)
  return levels
