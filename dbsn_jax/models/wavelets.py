"""Haar discrete wavelet transform (2x2, stride 2) and its exact inverse.

For each 2x2 block [[a, b], [c, d]] the four bands are (docs/design.md section 7)
LL = (a + b + c + d) / 2, LH = (-a - b + c + d) / 2, HL = (-a + b - c + d) / 2,
HH = (a - b - c + d) / 2: an orthonormal transform, so the inverse is its transpose.
"""
import jax.numpy as jnp


def dwt(x):
  """`(B, H, W, C)` with even H, W -> `(B, H/2, W/2, 4C)` as [LL, LH, HL, HH] x C."""
  a, b = x[:, 0::2, 0::2], x[:, 0::2, 1::2]
  c, d = x[:, 1::2, 0::2], x[:, 1::2, 1::2]
  ll = (a + b + c + d) / 2
  lh = (-a - b + c + d) / 2
  hl = (-a + b - c + d) / 2
  hh = (a - b - c + d) / 2
  return jnp.concatenate([ll, lh, hl, hh], axis=-1)


def iwt(y):
  """Inverse of `dwt`: `(B, h, w, 4C)` -> `(B, 2h, 2w, C)`."""
  ll, lh, hl, hh = jnp.split(y, 4, axis=-1)
  a = (ll - lh - hl + hh) / 2
  b = (ll - lh + hl - hh) / 2
  c = (ll + lh - hl - hh) / 2
  d = (ll + lh + hl + hh) / 2
  n, h, w, ch = a.shape
  top = jnp.stack([a, b], axis=3).reshape(n, h, 2 * w, ch)     # interleave columns
  bottom = jnp.stack([c, d], axis=3).reshape(n, h, 2 * w, ch)
  return jnp.stack([top, bottom], axis=2).reshape(n, 2 * h, 2 * w, ch)  # interleave rows
