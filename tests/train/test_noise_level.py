"""Stage 1 learns the true noise level with the default loss schedule (Eq. 8, then the
plain NLL), and neither loss alone does."""
import numpy as np
import pytest

from dbsn_jax.data import input_pipeline, sources
from dbsn_jax.train import stage1
from tests.conftest import tiny_stage1_config

STEPS = 400  # Eq. 8 for the first 100, then mostly the plain NLL: a tiny network's mu is
# weak, so its plain-NLL phase needs most of a short run to bring the noise level down.


def _learned_std(sigma, steps=STEPS, **overrides):
  """Train a tiny stage 1 on AWGN `sigma` (0-255); the mean learned std over the last
  50 steps' batches."""
  config = tiny_stage1_config(**{
      "train.num_steps": steps, "noise.sigma": sigma, "model.features": 16,
      "data.train": "sample:camera,moon,coffee",
      "data.patch_size": 32, "data.batch_size": 8, "optim.lr": 4e-3,
      "optim.milestones": (0.8,), "loss.switch_fraction": 0.25, **overrides})
  images = sources.load(config.data.train, 1).images
  model = stage1.build_model(config)
  state = stage1.create_state(config, model)
  step = stage1.make_train_step(config, model)
  it = input_pipeline.train_iterator(input_pipeline.train_dataset(
      images, config.data.patch_size, config.data.batch_size, 0), 1)
  stds = []
  for _ in range(steps):
    state, m = step(state, next(it))
    stds.append(float(m["noise_std"]))
  assert np.isfinite(stds).all()
  return float(np.mean(stds[-50:]))


@pytest.mark.optimized
@pytest.mark.parametrize("sigma,steps,overrides", [
    (10.0, 300, {"loss.switch_fraction": 0.15, "optim.milestones": (0.9,)}),
    (40.0, STEPS, {"data.batch_size": 4})])
def test_default_schedule_learns_sigma_within_ten_percent(sigma, steps, overrides):
  """Weak noise needs the better mu of 8 patches a step (with 4: +3 to +22 % over seeds
  0-2) and lands within 5 % (seeds 0-2: +4.4, +1.2, +5.3 %) when the plain NLL has 85 %
  of 300 steps; strong noise lands within 3 % with 4 patches over 400 steps."""
  learned = _learned_std(sigma, steps, **overrides)
  assert abs(learned / sigma - 1.0) < 0.10, learned


def test_switch_step_follows_the_loss_kind():
  config = tiny_stage1_config(**{"train.num_steps": 1000})
  assert config.loss.kind == "constrained_then_gaussian"  # The default, every config.
  assert stage1.switch_step(config) == 500
  config.loss.kind = "gaussian"
  assert stage1.switch_step(config) == 0
  config.loss.kind = "constrained"
  assert stage1.switch_step(config) > config.train.num_steps


def test_plain_nll_from_scratch_leaves_the_noise_level_where_it_started():
  """The fault the schedule fixes: with Sigma_mu free, log|Sigma_mu + Sigma_n| cannot
  tell the two apart, and Sigma_n stays near its initial ~4.9 / 255. Eq. 8 alone, over
  the same steps, moves it past the truth (towards sigma^2 + mu's error: 52-59 over
  seeds 0-2)."""
  small = {"model.features": 8, "data.patch_size": 16}
  plain = _learned_std(40.0, steps=100, **small, **{"loss.kind": "gaussian"})
  eq8 = _learned_std(40.0, steps=100, **small, **{"loss.kind": "constrained"})
  assert plain < 20.0 and eq8 > 1.1 * 40.0, (plain, eq8)
