"""Gaussian likelihoods of docs/design.md section 4 and the Bayes posterior mean (Eq. 9).

Shapes: `y, mu (..., C)`; covariances `(..., C, C)`. The loss functions return the
mean over all leading (pixel) dimensions of the per-pixel loss, including the 1/2.
"""
import jax.numpy as jnp

from dbsn_jax import linalg

EPS = 1e-6  # Added to covariance diagonals, as the reference does, before any solve.


def _guard(cov, eps):
  c = cov.shape[-1]
  return cov.astype(jnp.float32) + eps * jnp.eye(c, dtype=jnp.float32)


def _cholesky_terms(cov, r):
  """Mahalanobis r^T cov^-1 r and log|cov| through one Cholesky factor."""
  chol = linalg.cholesky(cov)
  z = linalg.solve_lower(chol, r)
  return jnp.sum(z * z, -1), linalg.logdet(chol)


def _terms(y, mu, sigma_mu, sigma_n, eps):
  """Per pixel: (r^T Sigma_y^-1 r, log|Sigma_y|, log|Sigma_n|, tr(Sigma_n^-1 Sigma_mu))."""
  r = (y - mu).astype(jnp.float32)
  s_mu, s_n = _guard(sigma_mu, 0.0), _guard(sigma_n, eps)
  s_y = _guard(sigma_mu + sigma_n, eps)
  if r.shape[-1] == 1:  # Scalar fast path, same formulas.
    vy, vn, vm = s_y[..., 0, 0], s_n[..., 0, 0], s_mu[..., 0, 0]
    return r[..., 0] ** 2 / vy, jnp.log(vy), jnp.log(vn), vm / vn
  maha, logdet_y = _cholesky_terms(s_y, r)
  chol_n = linalg.cholesky(s_n)
  # tr(Sigma_n^-1 Sigma_mu) = sum_k [Sigma_n^-1 Sigma_mu]_kk, one solve per column.
  trace = sum(linalg.cho_solve(chol_n, s_mu[..., :, k])[..., k] for k in range(r.shape[-1]))
  return maha, logdet_y, linalg.logdet(chol_n), trace


def constrained_nll(y, mu, sigma_mu, sigma_n, eps: float = EPS):
  """Paper Eq. 8: 0.5 [r^T Sigma_y^-1 r + log|Sigma_n| + tr(Sigma_n^-1 Sigma_mu)].

  log|Sigma_n + Sigma_mu| expanded to first order around Sigma_n, which encodes the
  prior |Sigma_n| >> |Sigma_mu| and stops Sigma_mu from absorbing the noise.
  """
  maha, _, logdet_n, trace = _terms(y, mu, sigma_mu, sigma_n, eps)
  return 0.5 * jnp.mean(maha + logdet_n + trace)


def gaussian_nll(y, mu, sigma_mu, sigma_n, eps: float = EPS):
  """Plain Gaussian NLL: 0.5 [r^T Sigma_y^-1 r + log|Sigma_y|], Sigma_y = Sigma_mu + Sigma_n."""
  maha, logdet_y, _, _ = _terms(y, mu, sigma_mu, sigma_n, eps)
  return 0.5 * jnp.mean(maha + logdet_y)


def bayes_estimate(y, mu, sigma_mu, sigma_n, eps: float = EPS):
  """Posterior mean of prior N(mu, Sigma_mu) and likelihood N(x, Sigma_n), `(..., C)`.

  x = (Sigma_mu^-1 + Sigma_n^-1)^-1 (Sigma_mu^-1 mu + Sigma_n^-1 y)
    = mu + Sigma_mu (Sigma_mu + Sigma_n)^-1 (y - mu)   (docs/design.md section 4).
  Eq. 9 as printed, (Sigma_mu + Sigma_n)^-1 (Sigma_mu y + Sigma_n mu), applies the
  transposed gain; the two agree only when the matrices commute (gray, diagonal).
  """
  y32, mu32 = y.astype(jnp.float32), mu.astype(jnp.float32)
  s_mu, s_n = sigma_mu.astype(jnp.float32), sigma_n.astype(jnp.float32)
  r = y32 - mu32
  if y.shape[-1] == 1:
    vm, vn = s_mu[..., 0, 0], s_n[..., 0, 0]
    return mu32 + (vm / (vm + vn + eps))[..., None] * r
  z = linalg.cho_solve(linalg.cholesky(_guard(s_mu + s_n, eps)), r)
  return mu32 + (s_mu @ z[..., None])[..., 0]


def mse(a, b):
  """Mean squared error over all elements."""
  return jnp.mean(jnp.square(a.astype(jnp.float32) - b.astype(jnp.float32)))
