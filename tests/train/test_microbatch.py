"""Micro-batched stage-1 steps: the same gradients, loss and outputs as one pass."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dbsn_jax import noise, prng
from dbsn_jax.train import microbatch, stage1
from tests.conftest import tiny_stage1_config


def _close(a, b, rel=1e-5):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  assert a.shape == b.shape
  assert np.abs(a - b).max() <= rel * max(np.abs(b).max(), 1e-30)


def _batch(config, b=4):
  x = prng.uniform(jax.random.PRNGKey(0), (b, 24, 24, 1))
  ids = jnp.arange(b, dtype=jnp.int32) % 2
  y, _ = noise.from_config(config.noise)(jax.random.PRNGKey(1), x, ids)
  return y, ids


@pytest.mark.parametrize("micro,devices", [(1, 1), (2, 1), (1, 2)])
def test_accumulated_gradients_equal_one_pass(micro, devices):
  """Also for a batch laid out as 2 devices' shares: the outputs come back in order."""
  config = tiny_stage1_config(**{"noise_model.per_image": True})
  model = stage1.build_model(config, num_images=2)
  state = stage1.create_state(config, model, num_images=2)
  y, ids = _batch(config)
  # Past the L2 warm-up, so both the likelihood and the covariance heads get gradients.
  fn = jax.value_and_grad(
      lambda p, yy, ii: stage1.loss_fn(p, model, yy, ii, 10**6, config.loss), has_aux=True)
  (loss, aux), grads = jax.jit(fn)(state.params, y, ids)
  per_device = y.shape[0] // devices
  (loss_m, aux_m), grads_m = jax.jit(lambda p: microbatch.accumulate(
      lambda yy, ii: fn(p, yy, ii), (y, ids), per_device, micro, p))(state.params)
  _close(loss_m, loss)
  for a, b in zip(jax.tree.leaves(grads_m), jax.tree.leaves(grads)):
    _close(a, b, 1e-4)
  for a, b in zip(aux_m, aux):  # mu, Sigma_mu, Sigma_n per patch in batch order; l2.
    _close(a, b)


def test_microbatched_train_step_matches(tmp_path):
  """The whole jitted step: same loss and metrics; parameters move alike."""
  config = tiny_stage1_config()
  model = stage1.build_model(config)
  batch = {"image": np.asarray(prng.uniform(jax.random.PRNGKey(2), (4, 24, 24, 1))),
           "image_id": np.zeros((4,), np.int32)}
  out = {}
  for micro in (0, 2):
    config.train.microbatch = micro
    state = stage1.create_state(config, model)
    state, m = stage1.make_train_step(config, model)(state, batch)
    out[micro] = state, m
  for k in ("loss", "mse_mu_y", "psnr_mu", "noise_std"):
    _close(out[2][1][k], out[0][1][k])
  moved = [np.abs(np.asarray(a) - np.asarray(b)).max() for a, b in zip(
      jax.tree.leaves(out[2][0].params), jax.tree.leaves(out[0][0].params))]
  assert max(moved) < 1e-4 * config.optim.lr / 1e-3
