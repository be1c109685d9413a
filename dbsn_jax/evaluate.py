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


def noisy_set(source: str, channels: int, noise_cfg, seed: int = 1234, start: int = 0,
              stop=None):
  """(noisy, clean, names): noise for image i drawn from fold_in(PRNGKey(seed), i)."""
  clean = sources.load(source, channels, start, stop)
  add = jax.jit(noise.from_config(noise_cfg))
  noisy = []
  for i, x in enumerate(clean.images):
    key = jax.random.fold_in(jax.random.PRNGKey(seed), start + i)
    noisy.append(np.asarray(add(key, jnp.asarray(x)[None], jnp.array([start + i]))[0][0]))
  return noisy, clean.images, clean.names


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
