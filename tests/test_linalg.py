"""Unrolled small-matrix Cholesky and solves equal NumPy's."""
import jax
import numpy as np
import pytest

from dbsn_jax import linalg


@pytest.mark.parametrize("c", [1, 2, 3, 5])
def test_cholesky_and_solves(c):
  rng = np.random.default_rng(c)
  a = rng.normal(size=(4, 6, c, c))
  spd = (a @ np.swapaxes(a, -1, -2) + 0.1 * np.eye(c)).astype(np.float32)
  b = rng.normal(size=(4, 6, c)).astype(np.float32)
  low = np.asarray(linalg.cholesky(spd))
  np.testing.assert_allclose(low, np.linalg.cholesky(spd.astype(np.float64)), rtol=1e-4,
                             atol=1e-5)
  expect = np.linalg.solve(spd.astype(np.float64), b[..., None].astype(np.float64))[..., 0]
  np.testing.assert_allclose(linalg.cho_solve(low, b), expect, rtol=1e-3, atol=1e-4)
  np.testing.assert_allclose(linalg.logdet(low), np.linalg.slogdet(spd.astype(np.float64))[1],
                             rtol=1e-4, atol=1e-4)


def test_gradients_are_finite():
  a = np.eye(3, dtype=np.float32)[None] * 0.02 + 0.001
  g = jax.grad(lambda m: linalg.logdet(linalg.cholesky(m)).sum())(a)
  # Only the lower triangle is read, so the symmetrised gradient is d log|A| / dA = A^-1.
  sym = (g[0] + g[0].T) / 2
  np.testing.assert_allclose(sym, np.linalg.inv(a[0].astype(np.float64)), rtol=1e-3, atol=1e-2)
