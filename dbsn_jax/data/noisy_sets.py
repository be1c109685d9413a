"""Seeded noisy versions of a clean image set (the evaluation protocol's inputs).

Noise for image i is drawn from fold_in(PRNGKey(seed), i), i counted from the start
of the source, so every run, in training or in `dbsn-eval`, sees the same noisy images.
"""
import jax
import jax.numpy as jnp
import numpy as np

from dbsn_jax import noise
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
  """(noisy, clean, true covariances, names) of images `[start:stop]` of `source`,
  centre-cropped, with the seeded noise of the module docstring."""
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
