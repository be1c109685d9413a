"""The 8 dihedral transforms of an image batch, and their inverses (self-ensemble).

`k` in 0..7: rotate by 90 k degrees (k mod 4) in the (H, W) plane, then, for k >= 4,
flip the rows. Both stages train on all 8 (the input pipeline's augmentation), so
averaging a denoiser's outputs over them is a test-time ensemble of 8 views.
"""
import jax.numpy as jnp
import numpy as np

COUNT = 8


def _np(x):
  """NumPy for NumPy arrays (no compile per shape), jax.numpy for the rest (traced)."""
  return np if isinstance(x, np.ndarray) else jnp


def forward(x, k: int):
  """Transform `k` of `x (N, H, W, C)`; H and W swap for odd k."""
  x = _np(x).rot90(x, k % 4, axes=(1, 2))
  return x[:, ::-1] if k >= 4 else x


def inverse(x, k: int):
  """Undo `forward(., k)`: `inverse(forward(x, k), k) == x`."""
  x = x[:, ::-1] if k >= 4 else x
  return _np(x).rot90(x, -(k % 4), axes=(1, 2))
