"""The training state pytree and the optimizer built from a config."""
import math
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state


class TrainState(train_state.TrainState):
  """Step, parameters, optimizer state, and the PRNG key of the noise draws.

  `batch_stats` holds BatchNorm statistics (empty for models without BatchNorm).
  `ema_params` is an exponential moving average of `params` (None when `ema_decay`
  is 0), the weights that evaluation and export use.
  """
  key: jax.Array
  batch_stats: Any = flax.struct.field(default_factory=dict)
  ema_params: Any = None
  ema_decay: float = flax.struct.field(pytree_node=False, default=0.0)


def with_ema(state: TrainState, decay: float) -> TrainState:
  """`state` that keeps an EMA of its parameters with `decay` in [0, 1) (0: none)."""
  if not 0 <= decay < 1:
    raise ValueError(f"optim.ema_decay must be in [0, 1) (0 turns the average off), got {decay}")
  if not decay:
    return state
  # A copy, not the same buffers: the train step donates the state, and one buffer
  # cannot be donated twice.
  return state.replace(ema_params=jax.tree.map(jnp.copy, state.params), ema_decay=float(decay))


def eval_params(state: TrainState):
  """The parameters to evaluate and export: the EMA where the state keeps one."""
  return state.params if state.ema_params is None else state.ema_params


def learning_rate_schedule(optim_cfg, num_steps: int) -> optax.Schedule:
  """Piecewise constant: lr, times `decay` at each milestone (fractions of num_steps)."""
  # `not x > 0` also refuses NaN, which every comparison passes as False.
  if not (math.isfinite(optim_cfg.lr) and optim_cfg.lr > 0):
    raise ValueError(f"optim.lr must be a finite number > 0, got {optim_cfg.lr}")
  if not (math.isfinite(optim_cfg.decay) and optim_cfg.decay > 0):
    raise ValueError(f"optim.decay must be a finite number > 0, got {optim_cfg.decay}")
  for name in ("b1", "b2"):
    if not 0 <= optim_cfg[name] < 1:
      raise ValueError(f"optim.{name} must be in [0, 1), got {optim_cfg[name]}")
  bounds = {}
  for frac in optim_cfg.milestones:
    if not 0 < frac < 1:
      raise ValueError(f"optim.milestones are fractions of train.num_steps in (0, 1), got {frac}")
    step = max(1, int(round(frac * num_steps)))
    bounds[step] = bounds.get(step, 1.0) * optim_cfg.decay
  return optax.piecewise_constant_schedule(optim_cfg.lr, bounds)


def make_optimizer(optim_cfg, num_steps: int) -> optax.GradientTransformation:
  """Adam (b1, b2) with the piecewise-constant schedule."""
  return optax.adam(learning_rate_schedule(optim_cfg, num_steps),
                    b1=optim_cfg.b1, b2=optim_cfg.b2)


def guarded_update(state: TrainState, grads, loss, **extra):
  """Apply gradients unless the loss or any gradient is non-finite.

  Returns (new_state, ok). A skipped update still advances the step, so the next
  batch and noise draw differ; parameters and optimizer state stay as they were.
  """
  ok = jnp.isfinite(loss) & jnp.all(jnp.array(
      [jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
  new = state.apply_gradients(grads=grads, **extra)
  keep = lambda a, b: jnp.where(ok, a, b)  # noqa: E731
  new = new.replace(params=jax.tree.map(keep, new.params, state.params),
                    opt_state=jax.tree.map(keep, new.opt_state, state.opt_state),
                    batch_stats=jax.tree.map(keep, new.batch_stats, state.batch_stats))
  if state.ema_params is not None:
    # Warm-up as TF's ExponentialMovingAverage(num_updates): early steps weigh more, so
    # the average does not remember the random initialisation for 1 / (1 - decay) steps.
    t = jnp.asarray(state.step, jnp.float32)
    d = jnp.minimum(state.ema_decay, (1 + t) / (10 + t))
    ema = jax.tree.map(lambda e, p: d * e + (1 - d) * p, state.ema_params, new.params)
    new = new.replace(ema_params=jax.tree.map(keep, ema, state.ema_params))
  return new, ok
