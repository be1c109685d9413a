"""Cholesky factorisation and solves for batches of small (C <= 4) SPD matrices.

Unrolled into elementwise arithmetic over the batch: XLA's batched `cholesky` /
`triangular_solve` on CPU loop over the millions of per-pixel 3x3 matrices a color
batch has and, with their gradients, dominate a color training step. Larger C falls
back to jnp.linalg. Shapes: matrices `(..., C, C)`, vectors `(..., C)`.
"""
import jax
import jax.numpy as jnp

_UNROLL = 4


def cholesky(a):
  """Lower-triangular L with L L^T = a."""
  c = a.shape[-1]
  if c > _UNROLL:
    return jnp.linalg.cholesky(a)
  low = [[None] * c for _ in range(c)]
  for j in range(c):
    s = a[..., j, j] - sum(low[j][k] ** 2 for k in range(j))
    low[j][j] = jnp.sqrt(s)
    for i in range(j + 1, c):
      low[i][j] = (a[..., i, j] - sum(low[i][k] * low[j][k] for k in range(j))) / low[j][j]
  zero = jnp.zeros_like(a[..., 0, 0])
  return jnp.stack([jnp.stack([low[i][j] if j <= i else zero for j in range(c)], -1)
                    for i in range(c)], -2)


def solve_lower(low, b):
  """z with L z = b (forward substitution)."""
  c = low.shape[-1]
  if c > _UNROLL:
    return jax.scipy.linalg.solve_triangular(low, b[..., None], lower=True)[..., 0]
  z = []
  for i in range(c):
    z.append((b[..., i] - sum(low[..., i, k] * z[k] for k in range(i))) / low[..., i, i])
  return jnp.stack(z, -1)


def solve_upper_t(low, b):
  """x with L^T x = b (back substitution)."""
  c = low.shape[-1]
  if c > _UNROLL:
    return jax.scipy.linalg.solve_triangular(low, b[..., None], lower=True, trans=1)[..., 0]
  x = [None] * c
  for i in reversed(range(c)):
    x[i] = (b[..., i] - sum(low[..., k, i] * x[k] for k in range(i + 1, c))) / low[..., i, i]
  return jnp.stack(x, -1)


def cho_solve(low, b):
  """x with (L L^T) x = b."""
  return solve_upper_t(low, solve_lower(low, b))


def logdet(low):
  """log|L L^T| from the factor."""
  return 2.0 * jnp.sum(jnp.log(jnp.diagonal(low, axis1=-2, axis2=-1)), -1)
