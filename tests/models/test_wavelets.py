"""Haar DWT / IWT: exact inverse, zero detail on flat images, orthonormal."""
import jax
import jax.numpy as jnp
import numpy as np

from dbsn_jax import prng
from dbsn_jax.models.wavelets import dwt, iwt


def test_inverse_is_exact():
  x = prng.normal(jax.random.PRNGKey(0), (2, 10, 6, 3))
  np.testing.assert_allclose(iwt(dwt(x)), x, atol=1e-6)
  y = prng.normal(jax.random.PRNGKey(1), (1, 4, 5, 8))
  np.testing.assert_allclose(dwt(iwt(y)), y, atol=1e-6)


def test_constant_image_has_no_detail():
  bands = dwt(jnp.full((1, 8, 8, 2), 0.7))
  np.testing.assert_allclose(bands[..., :2], 1.4, rtol=1e-6)  # LL = 2 x mean.
  np.testing.assert_array_equal(bands[..., 2:], 0.0)


def test_bands_follow_the_spec_filters():
  x = jnp.array([[1.0, 2.0], [3.0, 5.0]]).reshape(1, 2, 2, 1)  # [[a, b], [c, d]]
  ll, lh, hl, hh = np.asarray(dwt(x)).ravel()
  assert (ll, lh, hl, hh) == (5.5, 2.5, 1.5, 0.5)
  np.testing.assert_allclose(float(jnp.sum(dwt(x) ** 2)), float(jnp.sum(x ** 2)))
