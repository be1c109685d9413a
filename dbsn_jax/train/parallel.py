"""Data parallelism by sharding annotations: a 1-D mesh over all devices.

The batch's leading axis is split across devices and the state is replicated; jit
inserts the gradient all-reduce (the loss is a mean over the global batch). On one
device this is a no-op. `data.batch_size` is the global batch.
"""
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def make_mesh() -> Mesh:
  return Mesh(np.array(jax.devices()), ("data",))


def check_batch(batch_size: int, field: str = "data.batch_size") -> None:
  """Refuse a global batch that does not split evenly over the devices."""
  n = jax.device_count()
  if batch_size % n:
    raise ValueError(f"{field} = {batch_size} is not divisible by the {n} devices")


def replicate(tree, mesh: Mesh):
  return jax.device_put(tree, NamedSharding(mesh, P()))


def shard_batch(batch, mesh: Mesh):
  """Split each array's leading axis over 'data' (replicate arrays it cannot split)."""
  n = mesh.devices.size

  def put(x):
    spec = P("data") if x.ndim and x.shape[0] % n == 0 and x.shape[0] else P()
    return jax.device_put(x, NamedSharding(mesh, spec))
  return jax.tree.map(put, batch)
