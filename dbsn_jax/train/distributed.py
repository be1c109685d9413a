"""Multi-host training on JAX's own runtime (`jax.distributed`).

Every process runs the same command; `initialize` joins them before any computation
when coordinator flags or the usual environment variables are present:

- `--coordinator_address=HOST:PORT --num_processes=N --process_id=I` (one per process),
- or `JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`,
- or `--multihost` on a cluster JAX detects itself (Cloud TPU pod slices, Slurm,
  Open MPI).

Then `jax.devices()` holds every process's devices, the train step's mesh spans them
all, each process loads only its own rows of each batch (`parallel.process_shard`),
orbax checkpoints are written jointly into the shared workdir, and only process 0
logs, writes TensorBoard, JSON and images. Without any of these it does nothing.
"""
import os
from typing import Optional

from absl import flags, logging

_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def define_flags() -> None:
  """The multi-host flags of the training binaries."""
  if "coordinator_address" in flags.FLAGS:  # Already defined by another binary module.
    return
  flags.DEFINE_string("coordinator_address", None,
                      "HOST:PORT of process 0, to train with several processes.")
  flags.DEFINE_integer("num_processes", None, "Number of processes (multi-host).")
  flags.DEFINE_integer("process_id", None, "This process's index in [0, num_processes).")
  flags.DEFINE_bool("multihost", False, "Join a cluster JAX detects itself "
                    "(TPU pod slice, Slurm, Open MPI).")


def initialize(coordinator_address: Optional[str] = None,
               num_processes: Optional[int] = None, process_id: Optional[int] = None,
               auto: bool = False) -> bool:
  """Join the processes of a multi-host run; returns whether one was joined.

  Arguments not given come from the environment variables above. Raises ValueError
  naming the missing setting when only some are given.
  """
  import jax
  env = {k: os.environ.get(k) for k in _ENV}
  address = coordinator_address or env["JAX_COORDINATOR_ADDRESS"]
  if num_processes is None and env["JAX_NUM_PROCESSES"]:
    num_processes = int(env["JAX_NUM_PROCESSES"])
  if process_id is None and env["JAX_PROCESS_ID"]:
    process_id = int(env["JAX_PROCESS_ID"])
  given = {"coordinator_address": address, "num_processes": num_processes,
           "process_id": process_id}
  if all(v is None for v in given.values()) and not auto:
    return False
  if not auto:
    missing = [k for k, v in given.items() if v is None]
    if missing:
      raise ValueError(f"multi-host training needs --{', --'.join(missing)} too "
                       f"(or {', '.join(_ENV)}); got {given}")
    if not 0 <= process_id < num_processes:
      raise ValueError(f"--process_id={process_id} must be in [0, {num_processes})")
  if jax.distributed.is_initialized():
    return True
  jax.distributed.initialize(coordinator_address=address, num_processes=num_processes,
                             process_id=process_id)
  if jax.process_index() != 0:  # Only process 0 reports progress.
    logging.set_verbosity(logging.WARNING)
  logging.info("process %d of %d; %d local and %d global devices", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())
  return True


def initialize_from_flags() -> bool:
  """`initialize` with the flags of `define_flags`."""
  f = flags.FLAGS
  return initialize(f.coordinator_address, f.num_processes, f.process_id, f.multihost)


def is_primary() -> bool:
  """True in process 0, the one that logs and writes files."""
  import jax
  return jax.process_index() == 0
