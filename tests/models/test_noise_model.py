"""CNN_est: per-pixel locality, per-image averaging, image-specific tables."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dbsn_jax import prng
from dbsn_jax.models import NoiseEstimator
from tests.conftest import perturbed


def _init(model, x, ids=None, seed=0):
  return perturbed(model.init(jax.random.PRNGKey(seed), x, ids)["params"], seed + 1, 0.3)


def test_hetero_is_local():
  model = NoiseEstimator(channels=3, mode="hetero")
  x = prng.uniform(jax.random.PRNGKey(0), (1, 12, 12, 3))
  params = _init(model, x)
  a = model.apply({"params": params}, x)
  b = model.apply({"params": params}, x.at[0, 5, 7].add(0.5))
  changed = np.any(np.asarray(a != b), axis=(-1, -2))[0]
  assert changed[5, 7]
  changed[5, 7] = False
  assert not changed.any(), "changing one pixel changed Sigma_n elsewhere"


def test_hetero_multivariate_is_local_and_full():
  model = NoiseEstimator(channels=3, mode="hetero_multivariate")
  x = prng.uniform(jax.random.PRNGKey(0), (1, 12, 12, 3))
  params = _init(model, x)
  a = np.asarray(model.apply({"params": params}, x))
  b = np.asarray(model.apply({"params": params}, x.at[0, 5, 7].add(0.5)))
  changed = np.any(a != b, axis=(-1, -2))[0]
  assert changed[5, 7] and changed.sum() == 1
  assert np.abs(a[..., 0, 1]).max() > 0  # Channels correlate.
  assert np.ptp(a[0, ..., 0, 1]) > 0  # and the covariance varies from pixel to pixel.
  eig = np.linalg.eigvalsh(a.astype(np.float64))
  assert np.all(eig > -1e-6 * eig.max(-1, keepdims=True))


def test_table_init_does_not_grow_with_the_number_of_images():
  """The traced init (what XLA compiles) is the same program for 5 and 500 image ids,
  so compile time cannot grow with a folder's size; the tables' rows still differ."""
  x = jnp.zeros((1, 8, 8, 3))
  ids = jnp.zeros((1,), jnp.int32)

  def program(n):
    model = NoiseEstimator(channels=3, mode="multivariate", num_models=n)
    return jax.make_jaxpr(model.init)(jax.random.PRNGKey(0), x, ids)

  small, large = program(5), program(500)
  assert len(small.eqns) == len(large.eqns)
  params = NoiseEstimator(channels=3, mode="multivariate", num_models=500).init(
      jax.random.PRNGKey(0), x, ids)["params"]
  k = np.asarray(params["layer0_kernel"])
  assert k.shape == (500, 3, 16)
  assert len({row.tobytes() for row in k}) == 500


def test_awgn_and_multivariate_are_constant_per_image():
  x = prng.uniform(jax.random.PRNGKey(0), (2, 10, 10, 3))
  for mode in ("awgn", "multivariate"):
    model = NoiseEstimator(channels=3, mode=mode)
    cov = np.asarray(model.apply({"params": _init(model, x)}, x))
    np.testing.assert_allclose(cov, np.broadcast_to(cov[:, :1, :1], cov.shape), rtol=1e-6)
    assert not np.allclose(cov[0], cov[1])  # Different images, different Sigma_n.
    eig = np.linalg.eigvalsh(cov.astype(np.float64))
    assert np.all(eig > -1e-6 * eig.max(-1, keepdims=True))  # PSD up to float32 rounding.
    if mode == "multivariate":
      assert np.abs(cov[..., 0, 1]).max() > 0  # Full covariance: channels correlate.


def test_initial_std_is_about_five_levels():
  model = NoiseEstimator(channels=1, mode="hetero")
  x = jnp.full((1, 4, 4, 1), 0.3)
  cov = model.apply(model.init(jax.random.PRNGKey(0), x), x)
  np.testing.assert_allclose(np.sqrt(cov), jax.nn.softplus(-4.0) + 1e-3, rtol=1e-6)


def test_image_specific_table_gathers_by_id():
  model = NoiseEstimator(channels=1, mode="hetero", num_models=5)
  x = prng.uniform(jax.random.PRNGKey(0), (1, 6, 6, 1))
  params = _init(model, x, jnp.zeros((1,), jnp.int32))
  assert params["layer0_kernel"].shape == (5, 1, 16)
  out = [model.apply({"params": params}, x, jnp.array([i])) for i in range(5)]
  assert not np.allclose(out[1], out[2])
  # Batch element b uses model ids[b]: same as applying each separately.
  both = model.apply({"params": params}, jnp.concatenate([x, x]), jnp.array([3, 1]))
  np.testing.assert_allclose(both[0], out[3][0], rtol=1e-6)
  np.testing.assert_allclose(both[1], out[1][0], rtol=1e-6)


@pytest.mark.parametrize("mode", ["awgn", "multivariate"])
def test_mask_averages_over_the_image_inside_a_padded_canvas(mode):
  # The Denoiser pads images to size buckets; the per-image average must ignore the pad.
  est = NoiseEstimator(channels=3, mode=mode, features=8, hidden_layers=1)
  x = prng.uniform(jax.random.PRNGKey(0), (2, 13, 10, 3))
  params = {"params": _init(est, x)}
  canvas = jnp.pad(x, ((0, 0), (0, 3), (0, 6), (0, 0)), constant_values=0.5)
  mask = jnp.zeros(canvas.shape[:3] + (1,)).at[:, :13, :10].set(1.0)
  want = est.apply(params, x)
  got = est.apply(params, canvas, None, mask)[:, :13, :10]
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-7)
  assert not np.allclose(np.asarray(est.apply(params, canvas)[:, :13, :10]), np.asarray(want))
