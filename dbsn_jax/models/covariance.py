"""Turn network outputs into symmetric positive (semi-)definite C x C covariances."""
from typing import Callable

import jax.numpy as jnp


def num_outputs(channels: int, form: str) -> int:
  """Numbers q a head must output for `form` in {'diag', 'full'}."""
  if form == "diag":
    return channels
  if form == "full":
    return channels * (channels + 1) // 2
  raise ValueError(f"covariance form must be 'diag' or 'full', got {form!r}")


def to_covariance(v: jnp.ndarray, channels: int, form: str,
                  diag_fn: Callable[[jnp.ndarray], jnp.ndarray]) -> jnp.ndarray:
  """`(..., q)` -> `(..., C, C)` as L L^T, L lower triangular.

  The first C numbers go through `diag_fn` to L's diagonal; for 'full' the remaining
  C(C-1)/2 fill the strict lower triangle row by row, untransformed.
  """
  c = channels
  if v.shape[-1] != num_outputs(c, form):
    raise ValueError(f"expected {num_outputs(c, form)} numbers for a {form} {c}x{c} "
                     f"covariance, got {v.shape[-1]}")
  diag = diag_fn(v[..., :c])
  if form == "diag" or c == 1:
    return diag[..., :, None] * jnp.eye(c, dtype=v.dtype) * diag[..., None, :]
  rows, cols = jnp.tril_indices(c, -1)
  lower = jnp.zeros(v.shape[:-1] + (c, c), v.dtype).at[..., rows, cols].set(v[..., c:])
  factor = lower + diag[..., :, None] * jnp.eye(c, dtype=v.dtype)
  return factor @ jnp.swapaxes(factor, -1, -2)
