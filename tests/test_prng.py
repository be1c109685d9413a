"""prng's flat draws equal jax.random's shaped draws and Flax's He-normal bit for bit, so
switching to them changed no parameter and no noise sample."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dbsn_jax import prng

SHAPES = [(3, 3, 8, 9), (1, 1, 24, 8), (16, 1), (2, 5, 7, 3)]


@pytest.mark.parametrize("shape", SHAPES)
def test_flat_draws_equal_shaped_draws(shape):
  key = jax.random.PRNGKey(3)
  for dtype in (jnp.float32, jnp.bfloat16):
    np.testing.assert_array_equal(np.asarray(prng.normal(key, shape, dtype), np.float32),
                                  np.asarray(jax.random.normal(key, shape, dtype), np.float32))
    np.testing.assert_array_equal(
        np.asarray(prng.uniform(key, shape, dtype, 0.5, 2.0), np.float32),
        np.asarray(jax.random.uniform(key, shape, dtype, 0.5, 2.0), np.float32))
  lam = 10.0 * jax.random.uniform(jax.random.PRNGKey(4), shape)
  np.testing.assert_array_equal(prng.poisson(key, lam, shape),
                                jax.random.poisson(key, lam, shape))


@pytest.mark.parametrize("scale", [1.0, 0.01])
@pytest.mark.parametrize("shape", SHAPES[:3])
def test_he_normal_equals_flax_variance_scaling(scale, shape):
  key = jax.random.PRNGKey(5)
  want = nn.initializers.variance_scaling(2.0 * scale**2, "fan_in", "normal")(key, shape)
  np.testing.assert_array_equal(prng.he_normal(scale)(key, shape), want)
