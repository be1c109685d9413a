"""The training state pytree and the optimizer built from a config."""
import math
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state


class TrainState(train_state.TrainState):
  """Step, parameters, optimizer state, and the PRNG key of the noise draws.

  `batch_stats` holds BatchNorm statistics (empty for models without BatchNorm).
  """
  key: jax.Array
  batch_stats: Any = flax.struct.field(default_factory=dict)


SCHEDULES = ("step", "cosine")


def learning_rate_schedule(optim_cfg, num_steps: int) -> optax.Schedule:
  """`optim.schedule`: 'step' (piecewise constant: lr, times `decay` at each milestone,
  fractions of num_steps) or 'cosine' (lr down to 0 at num_steps on a half cosine),
  times a linear warm-up from 0 over the first `optim.warmup` fraction of the steps."""
  # `not x > 0` also refuses NaN, which every comparison passes as False.
  if not (math.isfinite(optim_cfg.lr) and optim_cfg.lr > 0):
    raise ValueError(f"optim.lr must be a finite number > 0, got {optim_cfg.lr}")
  if not (math.isfinite(optim_cfg.decay) and optim_cfg.decay > 0):
    raise ValueError(f"optim.decay must be a finite number > 0, got {optim_cfg.decay}")
  for name in ("b1", "b2"):
    if not 0 <= optim_cfg[name] < 1:
      raise ValueError(f"optim.{name} must be in [0, 1), got {optim_cfg[name]}")
  warmup = optim_cfg.get("warmup", 0.0)
  if not 0 <= warmup < 1:
    raise ValueError(f"optim.warmup must be a fraction of train.num_steps in [0, 1), got {warmup}")
  base = _decay_schedule(optim_cfg, num_steps)
  warm_steps = int(round(warmup * num_steps))
  if not warm_steps:
    return base
  # Adam's first updates are +-lr on every weight whatever the gradient's size; at full
  # lr they push whole ReLU layers below zero for good (docs/evaluation.md).
  return lambda t: base(t) * jnp.minimum(1.0, (t + 1) / warm_steps)


def _decay_schedule(optim_cfg, num_steps: int) -> optax.Schedule:
  kind = optim_cfg.get("schedule", "step")
  if kind not in SCHEDULES:
    raise ValueError(f"optim.schedule must be one of {SCHEDULES}, got {kind!r}")
  if kind == "cosine":
    return optax.cosine_decay_schedule(optim_cfg.lr, max(num_steps, 1))
  bounds = {}
  for frac in optim_cfg.milestones:
    if not 0 < frac < 1:
      raise ValueError(f"optim.milestones are fractions of train.num_steps in (0, 1), got {frac}")
    step = max(1, int(round(frac * num_steps)))
    bounds[step] = bounds.get(step, 1.0) * optim_cfg.decay
  return optax.piecewise_constant_schedule(optim_cfg.lr, bounds)


def restore_target(make_state) -> TrainState:
  """A state of zeros with the structure `make_state()` returns, for a checkpoint to be
  restored into: traced, not run (no initialisation is compiled), one host-to-device
  copy."""
  abstract = jax.eval_shape(make_state)
  return jax.device_put(jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), abstract))


class ParamsEMAState(NamedTuple):
  """The number of updates so far and the moving average of the parameters."""
  count: jax.Array
  ema: Any


def params_ema(decay: float) -> optax.GradientTransformation:
  """Passes updates through and keeps, in its state, an EMA of the updated parameters.

  Warm-up as TF's ExponentialMovingAverage(num_updates): the decay is
  min(decay, (1 + t) / (10 + t)) at update t, so the average soon forgets the random
  initialisation. Living in the optimizer state, it is checkpointed, guarded against
  non-finite steps and replicated like the Adam moments.
  """
  def init(params):
    # A copy, not the same buffers: the train step donates the state, and one buffer
    # cannot be donated twice.
    return ParamsEMAState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.copy, params))

  def update(updates, state, params):
    t = state.count.astype(jnp.float32)
    d = jnp.minimum(decay, (1 + t) / (10 + t))
    new = optax.apply_updates(params, updates)
    ema = jax.tree.map(lambda e, p: d * e + (1 - d) * p, state.ema, new)
    return updates, ParamsEMAState(state.count + 1, ema)
  return optax.GradientTransformation(init, update)


def make_optimizer(optim_cfg, num_steps: int) -> optax.GradientTransformation:
  """Adam (b1, b2) with the learning-rate schedule; before it, gradients clipped to a
  global norm of `optim_cfg.clip_norm` when > 0; after it, an EMA of the weights when
  `optim_cfg.ema_decay` > 0."""
  adam = optax.adam(learning_rate_schedule(optim_cfg, num_steps),
                    b1=optim_cfg.b1, b2=optim_cfg.b2)
  decay = optim_cfg.get("ema_decay", 0.0)
  if not 0 <= decay < 1:
    raise ValueError(f"optim.ema_decay must be in [0, 1) (0 turns the average off), got {decay}")
  clip = optim_cfg.get("clip_norm", 0.0)
  if not (math.isfinite(clip) and clip >= 0):
    raise ValueError(f"optim.clip_norm must be a finite number >= 0 (0 turns clipping off), "
                     f"got {clip}")
  # Adam divides by the gradient's running RMS, so clipping changes nothing while norms
  # stay below the threshold; one outsized batch can no longer move every weight by
  # several lr at once. Off, the optimizer state keeps its old structure, so workdirs
  # written before the option resume.
  parts = ([optax.clip_by_global_norm(clip)] if clip else []) + [adam]
  parts += [params_ema(decay)] if decay else []
  return parts[0] if len(parts) == 1 else optax.chain(*parts)


def ema_params(state: TrainState):
  """The moving average of the parameters, or None where the optimizer keeps none."""
  found = [s for s in jax.tree.leaves(state.opt_state,
                                      is_leaf=lambda s: isinstance(s, ParamsEMAState))
           if isinstance(s, ParamsEMAState)]
  return found[0].ema if found else None


def eval_params(state: TrainState):
  """The parameters to evaluate and export: the EMA where the optimizer keeps one."""
  ema = ema_params(state)
  return state.params if ema is None else ema


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
  return new, ok
