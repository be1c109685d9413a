"""Data parallelism by sharding annotations: a 1-D mesh over every device of every process.

`data.batch_size` is the batch per device: the global batch is
`batch_size x jax.device_count()`. Each process builds only its own rows
(`batch_size x jax.local_device_count()`) and `shard_batch` joins them into one global
array split along the mesh's 'data' axis. Parameters and optimizer state are
replicated; since the loss is a mean over the global batch, `jax.jit` inserts the
gradient all-reduce (sharding-annotated jit, pmap semantics without the
maintenance-mode `jax.pmap`). On one device all of this is a no-op.

Global batch j is the same rows whether it comes from 1 process with 2 devices or 2
processes with 1 device each: the dataset's elements are local batches in global order
(element j * P + p is process p's part of global batch j), and each process keeps
every P-th element from its own index.
"""
import grain
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def make_mesh() -> Mesh:
  """The 1-D ('data',) mesh over all devices, grouped by process."""
  return Mesh(np.array(jax.devices()), ("data",))


def local_batch_size(per_device: int) -> int:
  """Rows this process loads per step: per-device batch x local devices."""
  return per_device * jax.local_device_count()


def global_batch_size(per_device: int) -> int:
  """Rows in one step over all processes: per-device batch x all devices."""
  return per_device * jax.device_count()


def check_batch(rows: int, field: str = "batch") -> None:
  """Refuse a batch of `rows` rows that does not split evenly over the local devices."""
  n = jax.local_device_count()
  if rows % n:
    raise ValueError(f"{field} = {rows} is not divisible by the {n} devices")


def check_per_device(batch_size, field: str = "data.batch_size") -> None:
  """`data.batch_size` (per device) must be a positive integer."""
  if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
    raise ValueError(f"{field} (the batch per device) must be a positive integer, "
                     f"got {batch_size!r}")


def replicate(tree, mesh: Mesh):
  """Copy every leaf onto every device of the mesh (all processes hold the same values)."""
  sharding = NamedSharding(mesh, P())
  if jax.process_count() > 1:  # Host values: each process supplies the (same) whole array.
    tree = jax.tree.map(
        lambda x: x if getattr(x, "sharding", None) == sharding else np.asarray(x), tree)
  return jax.device_put(tree, sharding)


def shard_batch(batch, mesh: Mesh):
  """This process's rows of each array -> global arrays split along 'data'.

  An array with no rows (e.g. a stage-2 batch without real patches) is replicated.
  """
  split = NamedSharding(mesh, P("data"))
  whole = NamedSharding(mesh, P())

  def put(path, x):
    x = np.asarray(x)
    if not x.ndim or not x.shape[0]:
      return jax.make_array_from_process_local_data(whole, x, x.shape)
    check_batch(x.shape[0], f"the batch's {jax.tree_util.keystr(path)} rows")
    return jax.make_array_from_process_local_data(split, x)
  return jax.tree_util.tree_map_with_path(put, batch)


def local_copy(tree):
  """One device's copy of replicated arrays, for per-process work such as evaluation.

  Evaluation then runs on this process's first device alone, needing no other process.
  """
  def one(x):
    if isinstance(x, jax.Array) and len(x.sharding.device_set) > 1:
      return x.addressable_data(0)
    return x
  return jax.tree.map(one, tree)


def process_shard(ds: grain.MapDataset) -> grain.MapDataset:
  """This process's elements of a dataset of local batches in global order."""
  opts = grain.sharding.ShardByJaxProcess()
  if opts.shard_count == 1:
    return ds
  return ds[opts.shard_index::opts.shard_count]


def stack_devices(ds: grain.MapDataset) -> grain.MapDataset:
  """Elements that are per-device batches -> local batches of the local devices.

  Consecutive elements are joined along the rows, so each device's share keeps the
  composition of one element (e.g. stage 2's clean/real split).
  """
  n = jax.local_device_count()
  if n == 1:
    return ds
  join = lambda b: jax.tree.map(  # noqa: E731
      lambda x: x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:]), b)
  return ds.batch(n).map(join)
