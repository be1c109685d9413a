"""Losses and the Bayes rule equal independent float64 NumPy formulas."""
import numpy as np
import pytest

from dbsn_jax import losses


def _spd(rng, shape, c, scale):
  a = rng.normal(size=shape + (c, c)) * scale
  return a @ np.swapaxes(a, -1, -2) + 0.05 * scale**2 * np.eye(c)


def _reference(y, mu, s_mu, s_n):
  """Per-pixel terms in float64, by explicit inverses and determinants."""
  c = y.shape[-1]
  con, gau, bay = [], [], []
  for yi, mi, smi, sni in zip(y.reshape(-1, c), mu.reshape(-1, c),
                              s_mu.reshape(-1, c, c), s_n.reshape(-1, c, c)):
    r = yi - mi
    sy = smi + sni
    maha = r @ np.linalg.inv(sy) @ r
    con.append(0.5 * (maha + np.log(np.linalg.det(sni)) + np.trace(np.linalg.inv(sni) @ smi)))
    gau.append(0.5 * (maha + np.log(np.linalg.det(sy))))
    # Posterior mean of prior N(mu, S_mu) and likelihood N(x, S_n), by its textbook
    # information form, independent of the gain form the code uses.
    inv_mu, inv_n = np.linalg.inv(smi), np.linalg.inv(sni)
    bay.append(np.linalg.inv(inv_mu + inv_n) @ (inv_mu @ mi + inv_n @ yi))
  return np.mean(con), np.mean(gau), np.array(bay).reshape(y.shape)


@pytest.mark.parametrize("c", [1, 3])
def test_losses_and_bayes_match_float64(c):
  rng = np.random.default_rng(c)
  shape = (2, 5, 4)
  y = rng.uniform(size=shape + (c,))
  mu = y + rng.normal(size=y.shape) * 0.1
  s_mu = _spd(rng, shape, c, 0.03)
  s_n = _spd(rng, shape, c, 0.1)
  con, gau, bay = _reference(y, mu, s_mu, s_n)
  f32 = lambda a: a.astype(np.float32)  # noqa: E731
  args = [f32(a) for a in (y, mu, s_mu, s_n)]
  np.testing.assert_allclose(losses.constrained_nll(*args, eps=0.0), con, rtol=2e-4)
  np.testing.assert_allclose(losses.gaussian_nll(*args, eps=0.0), gau, rtol=2e-4)
  np.testing.assert_allclose(losses.bayes_estimate(*args, eps=0.0), bay, rtol=1e-4, atol=1e-5)


def test_bayes_gain_is_not_transposed_for_non_commuting_covariances():
  """Random full 3x3 SPD covariances that do not commute: the code's estimate equals the
  float64 posterior mean to 1e-5 and differs clearly from Eq. 9 as printed."""
  rng = np.random.default_rng(7)
  n = 64
  s_mu = _spd(rng, (n,), 3, 0.05)
  s_n = _spd(rng, (n,), 3, 0.08)
  assert np.abs(s_mu @ s_n - s_n @ s_mu).max() > 1e-4  # They do not commute.
  mu = rng.uniform(size=(n, 3))
  y = mu + rng.normal(size=(n, 3)) * 0.2
  want = np.stack([np.linalg.solve(np.linalg.inv(a) + np.linalg.inv(b),
                                   np.linalg.solve(a, m) + np.linalg.solve(b, v))
                   for a, b, m, v in zip(s_mu, s_n, mu, y)])
  printed = np.stack([np.linalg.solve(a + b, a @ v + b @ m)
                      for a, b, m, v in zip(s_mu, s_n, mu, y)])
  got = np.asarray(losses.bayes_estimate(*(a.astype(np.float32) for a in (y, mu, s_mu, s_n)),
                                         eps=0.0), np.float64)
  np.testing.assert_allclose(got, want, atol=1e-5)
  assert np.abs(printed - want).max() > 1e-2


def test_gray_bayes_closed_form():
  y, mu = np.float32([[0.8]]), np.float32([[0.5]])
  s_mu, s_n = np.float32([[[0.01]]]), np.float32([[[0.03]]])
  np.testing.assert_allclose(losses.bayes_estimate(y, mu, s_mu, s_n, eps=0.0),
                             [[(0.01 * 0.8 + 0.03 * 0.5) / 0.04]], rtol=1e-6)


def test_constrained_equals_gaussian_when_sigma_mu_vanishes():
  rng = np.random.default_rng(0)
  y, mu = rng.uniform(size=(10, 3)).astype(np.float32), rng.uniform(size=(10, 3)).astype(np.float32)
  s_n = _spd(rng, (10,), 3, 0.1).astype(np.float32)
  zero = np.zeros_like(s_n)
  np.testing.assert_allclose(losses.constrained_nll(y, mu, zero, s_n),
                             losses.gaussian_nll(y, mu, zero, s_n), rtol=1e-5)


def test_singular_covariance_is_guarded():
  """A zero Sigma_mu and a tiny Sigma_n stay finite thanks to eps."""
  y = np.zeros((4, 3), np.float32)
  z = np.zeros((4, 3, 3), np.float32)
  assert np.isfinite(losses.gaussian_nll(y, y + 0.1, z, z))
  assert np.all(np.isfinite(losses.bayes_estimate(y, y, z, z)))
