"""Score a denoiser on a benchmark set with the paper's protocol (SPEC section 9).

Noise is seeded per image (the same noisy images in every run), the noisy input is not
clipped, PSNR is on the clipped output over all channels with no border crop, and the
set's score is the mean of per-image scores.
"""
from typing import Dict

import jax
import jax.numpy as jnp
import numpy as np

from dbsn_jax import metrics, noise
from dbsn_jax.data import sources


def centre_crop(img, size: int):
  """The central `size x size` window of `(..., H, W, C)` (NumPy or JAX); 0: all."""
  if size <= 0:
    return img
  h, w = img.shape[-3:-1]
  t, l = max(0, (h - size) // 2), max(0, (w - size) // 2)
  return img[..., t:t + size, l:l + size, :]


def noisy_set(source: str, channels: int, noise_cfg, seed: int = 1234, start: int = 0,
              stop=None, crop: int = 0):
  """(noisy, clean, true covariances, names) of a benchmark set, centre-cropped.

  Noise for image i is drawn from fold_in(PRNGKey(seed), i), i counted from the start
  of the source, so every run sees the same noisy images.
  """
  clean = sources.load(source, channels, start, stop)
  cleans = [centre_crop(im, crop) for im in clean.images]
  add = jax.jit(noise.from_config(noise_cfg))
  noisy, covs = [], []
  for i, x in enumerate(cleans):
    key = jax.random.fold_in(jax.random.PRNGKey(seed), start + i)
    y, cov = add(key, jnp.asarray(x)[None], jnp.array([start + i], jnp.int32))
    noisy.append(np.asarray(y[0]))
    covs.append(np.asarray(cov[0]))
  return noisy, cleans, covs, clean.names


def awgn_scores(denoiser, source: str, sigmas, stop=None) -> Dict[str, Dict[str, float]]:
  """`score` of a denoiser on `source` under AWGN at each sigma (0-255 scale)."""
  from dbsn_jax import defaults
  results = {}
  for sigma in sigmas:
    cfg = defaults.stage1().noise
    cfg.kind, cfg.sigma = "awgn", float(sigma)
    noisy, clean, _, _ = noisy_set(source, denoiser.channels, cfg, stop=stop)
    results[str(sigma)] = score(denoiser, noisy, clean)
  return results


def score(denoiser, noisy, clean) -> Dict[str, float]:
  """Mean PSNR / SSIM of the noisy input and of the denoised images."""
  rows = []
  for y, x in zip(noisy, clean):
    out = denoiser.run(jnp.asarray(y)[None])
    xb, yb = jnp.asarray(x)[None], jnp.asarray(y)[None]
    rows.append([float(metrics.psnr(yb, xb)[0]), float(metrics.psnr(out, xb)[0]),
                 float(metrics.ssim(yb, xb)[0]), float(metrics.ssim(out, xb)[0])])
  m = np.mean(rows, axis=0)
  return {"psnr_noisy": m[0], "psnr": m[1], "ssim_noisy": m[2], "ssim": m[3],
          "num_images": len(rows)}
