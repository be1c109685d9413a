"""Gradient accumulation over micro-batches inside one jitted train step.

Why: on CPUs a pass over 8 reference-size patches streams every activation
(96 x 96 x 96 x 8 floats = 28 MB) through main memory; one patch at a time keeps them
in cache, and the same update costs less time (docs/speed.md). Accelerators want the
whole batch in one pass (`train.microbatch = 0`).
"""
import jax
import jax.numpy as jnp


def accumulate(value_and_grad, batch, per_device: int, micro: int, params):
  """`value_and_grad(*batch)` of a per-pixel mean loss, `micro` patches per device at a
  time: a scan over the passes sums their losses and gradients and concatenates their
  outputs, so the result equals one pass over the whole batch (to float rounding).

  `params` gives the gradients' structure. `batch`: arrays `(B, ...)` with
  B = devices x `per_device`, device-major as sharded;
  pass j takes rows j*micro ... of every device's share, so every device works in
  every pass. The losses are means over equal-sized passes, hence the 1/n.
  """
  b = batch[0].shape[0]
  n = per_device // micro if micro else 1
  if n <= 1:
    return value_and_grad(*batch)
  if b % (n * micro):
    raise ValueError(f"batch of {b} patches does not split into {n} passes of {micro} "
                     "per device")
  d = b // (n * micro)
  split = lambda a: jnp.swapaxes(a.reshape((d, n, micro) + a.shape[1:]), 0, 1).reshape(  # noqa: E731
      (n, d * micro) + a.shape[1:])
  merge = lambda a: jnp.swapaxes(a.reshape((n, d, micro) + a.shape[2:]), 0, 1).reshape(  # noqa: E731
      (b,) + a.shape[2:])

  def one_pass(acc, part):
    (loss, aux), grads = value_and_grad(*part)
    acc = jax.tree.map(jnp.add, acc, (loss, grads))
    return acc, aux

  zeros = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, params))
  (loss, grads), aux = jax.lax.scan(one_pass, zeros, tuple(split(a) for a in batch))
  loss, grads = loss / n, jax.tree.map(lambda g: g / n, grads)
  # Per-patch outputs back in batch order; per-pass scalars (means) averaged.
  aux = jax.tree.map(lambda a: merge(a) if a.ndim > 1 else jnp.mean(a, 0), aux)
  return (loss, aux), grads
