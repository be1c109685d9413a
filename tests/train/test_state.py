"""The train state: the guarded update and the EMA of the weights."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from dbsn_jax.train import state as state_lib


def _state(decay):
  optim = ml_collections.ConfigDict({"lr": 0.1, "b1": 0.9, "b2": 0.999, "milestones": (),
                                     "decay": 0.1, "ema_decay": decay})
  params = {"w": jnp.array([1.0, -2.0, 3.0]), "b": jnp.array(0.5)}
  return state_lib.TrainState.create(apply_fn=None, params=params,
                                     tx=state_lib.make_optimizer(optim, 100),
                                     key=jax.random.PRNGKey(0))


def test_ema_follows_the_warmed_up_recurrence_in_float64():
  decay = 0.9
  state = _state(decay)
  ema = {k: np.asarray(v, np.float64) for k, v in state.params.items()}
  rng = np.random.default_rng(0)
  update = jax.jit(state_lib.guarded_update)
  for t in range(30):
    g = {k: rng.normal(size=np.shape(v)).astype(np.float32) for k, v in ema.items()}
    state, ok = update(state, g, jnp.float32(1.0))
    assert bool(ok)
    d = min(decay, (1 + t) / (10 + t))
    for k in ema:  # The average of the parameters Adam produced.
      ema[k] = d * ema[k] + (1 - d) * np.asarray(state.params[k], np.float64)
  for k in ema:
    np.testing.assert_allclose(state_lib.eval_params(state)[k], ema[k], rtol=1e-5, atol=1e-6)
  assert state_lib.eval_params(state) is state_lib.ema_params(state)
  # The average lags the weights: it is not a copy of them.
  assert not np.allclose(state_lib.eval_params(state)["w"], state.params["w"], atol=1e-3)


def test_a_skipped_update_leaves_the_average_alone():
  state = _state(0.99)
  state, _ = state_lib.guarded_update(state, {"w": jnp.ones(3), "b": jnp.array(1.0)},
                                      jnp.float32(1.0))
  bad = {"w": jnp.array([1.0, jnp.nan, 0.0]), "b": jnp.array(0.0)}
  after, ok = state_lib.guarded_update(state, bad, jnp.float32(1.0))
  assert not bool(ok)
  for a, b in zip(jax.tree.leaves(state_lib.ema_params(after)),
                  jax.tree.leaves(state_lib.ema_params(state))):
    np.testing.assert_array_equal(a, b)


def test_no_average_without_a_decay_and_bad_decays_are_named():
  state = _state(0.0)
  assert state_lib.ema_params(state) is None and state_lib.eval_params(state) is state.params
  for bad in (1.0, -0.1):
    with pytest.raises(ValueError, match="optim.ema_decay"):
      _state(bad)


def test_cosine_schedule_falls_from_lr_to_zero_and_step_keeps_its_milestones():
  base = {"lr": 1e-3, "b1": 0.9, "b2": 0.999, "milestones": (0.5,), "decay": 0.1}
  cosine = state_lib.learning_rate_schedule(
      ml_collections.ConfigDict(dict(base, schedule="cosine")), 100)
  for t in (0, 25, 50, 100):
    np.testing.assert_allclose(float(cosine(t)), 1e-3 * 0.5 * (1 + np.cos(np.pi * t / 100)),
                               rtol=1e-5, atol=1e-12)
  step = state_lib.learning_rate_schedule(ml_collections.ConfigDict(base), 100)
  np.testing.assert_allclose([float(step(49)), float(step(50))], [1e-3, 1e-4], rtol=1e-6)
  with pytest.raises(ValueError, match="optim.schedule"):
    state_lib.learning_rate_schedule(
        ml_collections.ConfigDict(dict(base, schedule="linear")), 100)


def test_warmup_ramps_linearly_to_the_schedule_and_then_follows_it():
  base = {"lr": 1e-3, "b1": 0.9, "b2": 0.999, "milestones": (0.5,), "decay": 0.1}
  warm = state_lib.learning_rate_schedule(ml_collections.ConfigDict(dict(base, warmup=0.1)), 100)
  plain = state_lib.learning_rate_schedule(ml_collections.ConfigDict(base), 100)
  # The first update already moves (lr / 10, not 0); step 9 reaches lr; then the milestones.
  np.testing.assert_allclose([float(warm(t)) for t in (0, 4, 9, 10, 49, 50)],
                             [1e-4, 5e-4, 1e-3, 1e-3, 1e-3, 1e-4], rtol=1e-6)
  cosine = dict(base, schedule="cosine")
  np.testing.assert_allclose(
      float(state_lib.learning_rate_schedule(ml_collections.ConfigDict(dict(cosine, warmup=0.2)),
                                             100)(30)),
      float(state_lib.learning_rate_schedule(ml_collections.ConfigDict(cosine), 100)(30)))
  np.testing.assert_allclose(float(plain(0)), 1e-3, rtol=1e-6)  # warmup 0: off.
  for bad in (1.0, -0.1):
    with pytest.raises(ValueError, match="optim.warmup"):
      state_lib.learning_rate_schedule(ml_collections.ConfigDict(dict(base, warmup=bad)), 100)


def _adam_first_moment(opt_state):
  is_adam = lambda s: isinstance(s, optax.ScaleByAdamState)  # noqa: E731
  return [s.mu for s in jax.tree.leaves(opt_state, is_leaf=is_adam) if is_adam(s)][0]


@pytest.mark.parametrize("decay", [0.0, 0.99])
def test_clipping_caps_the_gradient_adam_sees_and_leaves_small_ones_alone(decay):
  optim = ml_collections.ConfigDict({"lr": 0.1, "b1": 0.9, "b2": 0.999, "milestones": (),
                                     "decay": 0.1, "ema_decay": decay, "clip_norm": 0.5})
  params = {"w": jnp.array([1.0, -2.0, 3.0]), "b": jnp.array(0.5)}
  big = {"w": jnp.array([3.0, 0.0, -4.0]), "b": jnp.array(12.0)}  # Global norm 13.
  small = jax.tree.map(lambda g: g / 130.0, big)                   # Global norm 0.1.
  for grads, scale in ((big, 0.5 / 13.0), (small, 1.0)):
    state = state_lib.TrainState.create(apply_fn=None, params=params,
                                        tx=state_lib.make_optimizer(optim, 100),
                                        key=jax.random.PRNGKey(0))
    state = state.apply_gradients(grads=grads)
    mu = _adam_first_moment(state.opt_state)
    for name in params:  # Adam's first moment after one step: (1 - b1) x the gradient seen.
      np.testing.assert_allclose(np.asarray(mu[name], np.float64),
                                 0.1 * np.asarray(grads[name], np.float64) * scale, rtol=1e-6)


def test_no_clipping_keeps_the_old_optimizer_state_and_bad_thresholds_are_named():
  optim = ml_collections.ConfigDict({"lr": 0.1, "b1": 0.9, "b2": 0.999, "milestones": (),
                                     "decay": 0.1})
  params = {"w": jnp.zeros(3)}
  old = jax.tree.structure(state_lib.make_optimizer(optim, 10).init(params))
  optim.clip_norm = 0.0
  assert jax.tree.structure(state_lib.make_optimizer(optim, 10).init(params)) == old
  for bad in (-1.0, float("nan"), float("inf")):
    optim.clip_norm = bad
    with pytest.raises(ValueError, match="optim.clip_norm"):
      state_lib.make_optimizer(optim, 10)
