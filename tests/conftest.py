"""Shared test fixtures: tiny configs that run in seconds on a CPU."""
import fcntl
import os
import pickle
import shutil

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One persistent XLA compilation cache for the whole suite, set before JAX is imported
# so that xdist workers and the subprocesses the tests start (they inherit os.environ)
# share it. Most test time is XLA compiling the same tiny programs again, in another
# test or process; the cache is keyed by the program, the flags and the JAX version,
# so a hit runs exactly the executable a compile would give. Every program is kept,
# however quick to compile: the op-by-op ones (10-70 ms each to compile, a few ms to
# read) recur in every process the suite starts. No size cap: with one, JAX locks the
# cache for every read and write and lists the whole directory at every write, which
# costs more than it saves at thousands of entries (docs/speed.md, "Test suite"). An
# entry read while another process writes it fails to decompress, and JAX then
# warns and compiles.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(REPO, ".pytest_cache", "jax_compilation"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", "-1")
# Nearly every test compiles a tiny program and runs it a few times, where XLA's
# optimisation passes cost more than they save (docs/speed.md, "Test suite").
# Tests that train for hundreds of steps take them back with `@pytest.mark.optimized`.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

from dbsn_jax import xla_cpu  # noqa: E402

# The XLA CPU kernels the binaries use (dbsn_jax.xla_cpu), for in-process tests too.
xla_cpu.use_xla_kernels()

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from dbsn_jax import defaults  # noqa: E402


def tiny_stage1_config(**overrides):
  """A stage-1 config small enough for unit tests (sample images, 8 features)."""
  c = defaults.stage1()
  c.model.features = 8
  c.model.blocks = (1, 1)
  c.data.train = "sample:astronaut,coins,brick"
  c.data.patch_size = 24
  c.data.batch_size = 4
  c.data.num_threads = 1
  c.eval.source = "sample:camera"
  c.eval.stop = 0
  c.eval.crop = 48
  c.eval.every_steps = 1000
  c.train.num_steps = 6
  c.train.log_every = 2
  c.train.checkpoint_every = 3
  c.optim.lr = 1e-3
  return apply_overrides(c, overrides)


def perturbed(tree, seed=0, scale=0.1):
  """`tree` plus `scale` x standard normal noise per leaf (NumPy arrays), so that biases
  and zero-initialised layers are not special. NumPy's generator, not jax.random: a
  draw per leaf shape would compile (docs/speed.md, "Test suite")."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda p: np.asarray(p, np.float32) + np.float32(scale)
                      * rng.standard_normal(np.shape(p), np.float32), tree)


def apply_overrides(config, overrides):
  """Set dotted fields, e.g. {'model.features': 8}, on a ConfigDict; returns it."""
  for k, v in overrides.items():
    node = config
    *parents, leaf = k.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = v
  return config


def build_once(tmp_path_factory, name: str, build):
  """`build(folder)`'s result, built once per test run in a folder of its own, whichever
  xdist worker asks first; the other waits for it and reuses it (pickled). For costly
  module fixtures (trained workdirs, subprocess output) that the tests only read."""
  base = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    base = base.parent  # This run's folder, which holds each worker's own.
  result = base / f"shared-{name}.pkl"
  with open(base / f"shared-{name}.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # Released when the file closes, or the worker dies.
    if not result.exists():
      folder = base / f"shared-{name}"
      shutil.rmtree(folder, ignore_errors=True)  # A build that failed half-way.
      folder.mkdir()
      tmp = result.with_suffix(".tmp")
      tmp.write_bytes(pickle.dumps(build(folder)))
      tmp.rename(result)
    return pickle.loads(result.read_bytes())


@pytest.fixture(autouse=True)
def _xla_optimizations(request):
  """Full XLA optimisation for tests marked `optimized` (their run time dominates)."""
  if request.node.get_closest_marker("optimized") is None:
    yield
    return
  before = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", False)
  try:
    yield
  finally:
    jax.config.update("jax_disable_most_optimizations", before)


@pytest.fixture
def tiny_config():
  return tiny_stage1_config
