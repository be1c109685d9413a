"""Stage-1 training: the loss falls, resume is bit-identical, bad steps are skipped."""
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dbsn_jax import noise
from dbsn_jax.data import input_pipeline, sources
from dbsn_jax.train import checkpoints, stage1
from tests.conftest import tiny_stage1_config


def _held_out_loss(config, model, params):
  x = jnp.asarray(sources.load("sample:camera", 1).images[0][None, 100:164, 100:164])
  y, _ = noise.from_config(config.noise)(jax.random.PRNGKey(5), x)
  loss, _ = stage1.loss_fn(params, model, y, jnp.zeros((1,), jnp.int32), 10**6, config.loss)
  return float(loss)


def test_a_few_steps_lower_the_loss():
  config = tiny_stage1_config(**{"train.num_steps": 40})
  images = sources.load(config.data.train, 1).images
  model = stage1.build_model(config)
  state = stage1.create_state(config, model)
  before = _held_out_loss(config, model, state.params)
  step = stage1.make_train_step(config, model)
  it = input_pipeline.train_iterator(input_pipeline.train_dataset(images, 24, 4, 0), 1)
  for _ in range(40):
    state, m = step(state, next(it))
  assert bool(m["finite"])
  assert _held_out_loss(config, model, state.params) < before - 0.5


def test_logged_grad_norm_is_the_norm_of_the_step_adam_took():
  """After one step from a fresh state Adam's first moment is (1 - b1) g, so the logged
  `grad_norm` (logged to spot the large steps of a collapse) must equal |mu| / (1 - b1)."""
  config = tiny_stage1_config()
  images = sources.load(config.data.train, 1).images
  model = stage1.build_model(config)
  state = stage1.create_state(config, model)
  it = input_pipeline.train_iterator(input_pipeline.train_dataset(images, 24, 4, 0), 1)
  state, m = stage1.make_train_step(config, model)(state, next(it))
  adam = [s for s in jax.tree.leaves(state.opt_state,
                                     is_leaf=lambda s: isinstance(s, optax.ScaleByAdamState))
          if isinstance(s, optax.ScaleByAdamState)][0]
  mu = np.sqrt(sum(np.sum(np.square(np.asarray(a, np.float64)))
                   for a in jax.tree.leaves(adam.mu)))
  assert float(m["grad_norm"]) > 0
  np.testing.assert_allclose(float(m["grad_norm"]), mu / (1 - config.optim.b1), rtol=1e-4)


def test_interrupted_run_resumes_bit_identically(tmp_path, monkeypatch):
  config = tiny_stage1_config()
  full = stage1.train_and_evaluate(config, str(tmp_path / "full"))["state"]

  real = stage1.make_train_step
  calls = {"n": 0}

  def interrupting(cfg, model):
    step = real(cfg, model)

    def wrapped(state, batch):
      calls["n"] += 1
      if calls["n"] == 4:  # SIGTERM in the middle of the run: save and stop.
        os.kill(os.getpid(), signal.SIGTERM)
      return step(state, batch)
    return wrapped

  monkeypatch.setattr(stage1, "make_train_step", interrupting)
  part = stage1.train_and_evaluate(config, str(tmp_path / "resumed"))
  assert int(part["state"].step) == 4
  assert not part["complete"] and part["eval"] == {}  # No slow evaluation when stopped.
  monkeypatch.setattr(stage1, "make_train_step", real)
  resumed = stage1.train_and_evaluate(config, str(tmp_path / "resumed"))["state"]
  assert int(resumed.step) == config.train.num_steps
  for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(resumed.params)):
    np.testing.assert_array_equal(a, b)
  stored = checkpoints.read_config(str(tmp_path / "resumed"))
  assert stored["model"]["features"] == 8 and stored["stage"] == "stage1"


def test_resuming_a_different_architecture_is_refused(tmp_path):
  stage1.train_and_evaluate(tiny_stage1_config(**{"train.num_steps": 2, "eval.source": ""}),
                            str(tmp_path))
  other = tiny_stage1_config(**{"train.num_steps": 4, "model.features": 12})
  with pytest.raises(ValueError, match="model"):
    stage1.train_and_evaluate(other, str(tmp_path))


def test_non_finite_step_is_skipped():
  config = tiny_stage1_config()
  model = stage1.build_model(config)
  state = stage1.create_state(config, model)
  step = stage1.make_train_step(config, model)
  bad = {"image": np.full((4, 24, 24, 1), np.nan, np.float32),
         "image_id": np.zeros((4,), np.int32)}
  before = jax.tree.map(np.asarray, state.params)
  state, m = step(state, bad)
  assert not bool(m["finite"]) and int(state.step) == 1
  for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(state.params)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("field,value,match", [
    ("noise.sigma", -5.0, "noise.sigma"),
    ("model.branches", ((5, 2), (5, 3)), "dilation 2"),
    ("loss.kind", "l1", "loss.kind"),
    ("data.batch_size", 0, "data.batch_size"),
    ("optim.milestones", (1.5,), "optim.milestones"),
    ("train.microbatch", 3, "train.microbatch"),
    ("optim.lr", float("nan"), "optim.lr"),
    ("optim.lr", -1e-3, "optim.lr"),
    ("optim.b2", 1.0, "optim.b2"),
    ("loss.switch_fraction", 1.0, "loss.switch_fraction"),
    ("loss.final_constrained_weight", float("nan"), "loss.final_constrained_weight"),
])
def test_bad_config_is_refused_by_name(field, value, match):
  config = tiny_stage1_config(**{field: value})
  with pytest.raises(ValueError, match=match):
    stage1.validate(config)
    stage1.create_state(config, stage1.build_model(config))


def _noise_table(config, stds):
  """A per-image AWGN CNN_est whose model m outputs the constant std `stds[m]`: zero
  weights into its output, the bias inverting softplus(v - 4) + 1e-3."""
  model = stage1.build_model(config, num_images=len(stds))
  params = stage1.create_state(config, model, len(stds)).params
  nm = dict(params["noise_model"])
  nm["out_bias"] = jnp.asarray(
      [[4.0 + np.log(np.expm1(s - 1e-3))] for s in stds], jnp.float32)
  nm["out_kernel"] = jnp.zeros_like(nm["out_kernel"])
  return model, {**params, "noise_model": nm}


def test_model_choice_picks_the_true_noise_level_despite_mu_error():
  """Candidates 10, 15, 20, 25 / 255; the images have 15 / 255 noise and a mu that is off
  by 12 / 255 with Sigma_mu saying so. Scored under Sigma_n alone the residual looks like
  19 / 255 noise and the 20 model wins; under Sigma_mu + Sigma_n the true 15 does."""
  config = tiny_stage1_config(**{"noise_model.per_image": True})
  stds = np.array([10.0, 15.0, 20.0, 25.0]) / 255.0
  model, params = _noise_table(config, stds)
  rng = np.random.default_rng(0)
  # Larger than the 64-pixel crop the choice scores, so the crop of the per-pixel
  # (B, H, W, C, C) Sigma_mu is exercised (it once cut the wrong axes).
  x = rng.uniform(0.2, 0.8, size=(3, 96, 80, 1))
  y = x + rng.normal(size=x.shape) * stds[1]
  err = 12.0 / 255.0
  mu = x + rng.normal(size=x.shape) * err
  sigma_mu = np.full(x.shape + (1,), err**2)
  f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
  ids = stage1.select_noise_models(params, model, f32(y), f32(mu), f32(sigma_mu))
  np.testing.assert_array_equal(np.asarray(ids), [1, 1, 1])
  blind = stage1.select_noise_models(params, model, f32(y), f32(mu), f32(0 * sigma_mu))
  np.testing.assert_array_equal(np.asarray(blind), [2, 2, 2])  # The old, biased choice.


def test_non_finite_parameters_are_never_saved_nor_loaded(tmp_path):
  config = tiny_stage1_config()
  model = stage1.build_model(config)
  state = stage1.create_state(config, model)
  mgr = checkpoints.manager(str(tmp_path))
  checkpoints.save(mgr, 1, state, {}, {"stage": "stage1"})
  bad = state.replace(params=jax.tree.map(lambda p: p * np.nan, state.params))
  with pytest.raises(FloatingPointError, match=r"not finite.*\(step 1\) is kept"):
    checkpoints.save(mgr, 2, bad, {}, {"stage": "stage1"})
  assert mgr.latest_step() == 1
  # One written behind our back (e.g. by an older version) is refused by name.
  import orbax.checkpoint as ocp
  mgr.save(3, args=ocp.args.Composite(state=ocp.args.StandardSave(bad),
                                      data=ocp.args.JsonSave({}),
                                      config=ocp.args.JsonSave({"stage": "stage1"})))
  mgr.wait_until_finished()
  with pytest.raises(ValueError, match="3 holds non-finite parameters"):
    checkpoints.restore(mgr, state)
