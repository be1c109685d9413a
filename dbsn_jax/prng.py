"""Random draws that compile fast: the same values as `jax.random`, drawn flat.

XLA's CPU compiler takes seconds to minutes on partitionable threefry over a multi-axis
shape (a jitted init of ten 4-D kernels: ~100 s), and a fraction of a second on the same
draw over one axis. `jax.random` gives the same values for `(n,)` reshaped as for the
shape itself, so every function here equals its `jax.random` namesake bit for bit.
"""
import math

import jax
import jax.numpy as jnp


def normal(key, shape, dtype=jnp.float32):
  """`jax.random.normal(key, shape, dtype)`, drawn flat."""
  return jax.random.normal(key, (math.prod(shape),), dtype).reshape(shape)


def uniform(key, shape, dtype=jnp.float32, minval=0.0, maxval=1.0):
  """`jax.random.uniform(key, shape, dtype, minval, maxval)`, drawn flat."""
  return jax.random.uniform(key, (math.prod(shape),), dtype, minval, maxval).reshape(shape)


def poisson(key, lam, shape):
  """`jax.random.poisson(key, lam, shape)` for `lam` of `shape`, drawn flat."""
  lam = jnp.broadcast_to(lam, shape)
  return jax.random.poisson(key, lam.reshape(-1), (math.prod(shape),)).reshape(shape)


def he_normal(scale: float = 1.0):
  """He-normal (fan-in) initializer times `scale`: the values of
  `jax.nn.initializers.variance_scaling(2 scale^2, 'fan_in', 'normal')`."""
  def init(key, shape, dtype=jnp.float32):
    fan_in = math.prod(shape[:-1])  # Receptive field x input channels (HWIO kernels).
    std = jnp.sqrt(jnp.asarray(2.0 * scale**2 / fan_in, dtype))
    return normal(key, shape, dtype) * std.astype(dtype)
  return init
