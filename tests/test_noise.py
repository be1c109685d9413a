"""Each synthetic noise model has the variance its formula states (within 3 %)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dbsn_jax import noise, prng

KEY = jax.random.PRNGKey(0)


def _x(c=1, b=4, size=128):
  return prng.uniform(jax.random.PRNGKey(7), (b, size, size, c), minval=0.05, maxval=0.95)


def test_awgn_variance():
  x = _x()
  y, cov = noise.awgn(KEY, x, 25.0)
  np.testing.assert_allclose(np.var(y - x), (25 / 255) ** 2, rtol=0.03)
  np.testing.assert_allclose(cov[..., 0, 0], (25 / 255) ** 2, rtol=1e-6)


def test_awgn_range_is_per_image():
  x = _x(b=8)
  y, cov = noise.awgn_range(KEY, x, 5.0, 50.0)
  per_image = np.var(np.asarray(y - x), axis=(1, 2, 3))
  np.testing.assert_allclose(per_image, np.asarray(cov[:, 0, 0, 0, 0]), rtol=0.03)
  assert per_image.max() > 2 * per_image.min()
  s = np.sqrt(np.asarray(cov[:, 0, 0, 0, 0])) * 255
  assert np.all((s >= 5) & (s <= 50))


@pytest.mark.parametrize("form", ["paper", "reference"])
def test_hetero_variance(form):
  x = _x()
  y, cov = noise.hetero(KEY, x, 40.0, 10.0, form)
  a, d = 40 / 255, 10 / 255
  expect = a * a * x + d * d if form == "paper" else a * a * x * x + d * d
  np.testing.assert_allclose(cov[..., 0, 0], expect[..., 0], rtol=1e-5)
  np.testing.assert_allclose(np.var((y - x) / jnp.sqrt(expect)), 1.0, rtol=0.03)


def test_multivariate_covariance():
  x = _x(c=3, b=3, size=160)
  y, cov = noise.multivariate(KEY, x, 75.0)
  for b in range(3):
    r = np.asarray(y[b] - x[b]).reshape(-1, 3)
    emp = r.T @ r / len(r)
    true = np.asarray(cov[b, 0, 0])
    assert np.linalg.norm(emp - true) <= 0.03 * np.linalg.norm(true)
    np.testing.assert_allclose(np.trace(true) <= 3 * (75 / 255) ** 2, True)
  assert not np.allclose(cov[0, 0, 0], cov[1, 0, 0])  # New Sigma per image.


def test_poisson_gaussian_variance():
  x = _x()
  y, cov = noise.poisson_gaussian(KEY, x, 30.0, 10.0)
  np.testing.assert_allclose(cov[..., 0, 0], (x / 30 + (10 / 255) ** 2)[..., 0], rtol=1e-5)
  np.testing.assert_allclose(np.var((y - x)[..., 0] / jnp.sqrt(cov[..., 0, 0])), 1.0, rtol=0.03)


def test_same_key_same_noise_and_no_clipping():
  x = _x()
  a, _ = noise.awgn(KEY, x, 50.0)
  b, _ = noise.awgn(KEY, x, 50.0)
  np.testing.assert_array_equal(a, b)
  assert float(a.min()) < 0.0 and float(a.max()) > 1.0  # Not clipped to [0, 1].
