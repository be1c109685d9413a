"""Throughput of the stage-1 train step and D-BSN forward pass, as a table.

  python tools/benchmark.py [--sizes=96:8,32:2,48:4,64:4] [--patch=96] [--batch=8]

Each size is FEATURES:BLOCKS_PER_BRANCH. Prints patches/s of a train step, forward
megapixels/s on a 320x480 image, achieved GFLOP/s from an analytic count, the ratio
to the dense-matmul rate measured in the same run, and compile time; writes JSON.
"""
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from dbsn_jax import defaults
from dbsn_jax.train import stage1

_SIZES = flags.DEFINE_string("sizes", "32:2,48:4,64:4,96:8", "FEATURES:BLOCKS list.")
_PATCH = flags.DEFINE_integer("patch", 96, "Training patch side.")
_BATCH = flags.DEFINE_integer("batch", 8, "Training batch.")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed train steps per size.")
_FWD = flags.DEFINE_string("forward", "320x480", "Forward image HxW ('' to skip).")
_MDC = flags.DEFINE_string("mdc_style", "paper", "MDC style.")
_JSON = flags.DEFINE_string("json", "", "Write results here.")


def macs_per_pixel(model) -> int:
  """Multiply-adds per output pixel of the D-BSN forward pass (1 gray channel in)."""
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)),
                      jnp.zeros((1,), jnp.int32))["params"]["dbsn"]
  return sum(int(np.prod(p.shape)) for path, p in jax.tree_util.tree_leaves_with_path(params)
             if "kernel" in jax.tree_util.keystr(path))


def matmul_gflops() -> float:
  a = jnp.ones((2048, 2048), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  f(a).block_until_ready()
  t = time.perf_counter()
  for _ in range(5):
    f(a).block_until_ready()
  return 5 * 2 * 2048**3 / (time.perf_counter() - t) / 1e9


def bench(features, blocks, peak):
  c = defaults.stage1()
  c.model.features, c.model.blocks, c.model.mdc_style = features, (blocks, blocks), _MDC.value
  c.data.patch_size, c.data.batch_size = _PATCH.value, _BATCH.value
  c.train.num_steps = 1000
  model = stage1.build_model(c)
  state = stage1.create_state(c, model)
  step = stage1.make_train_step(c, model)
  rng = np.random.default_rng(0)
  batch = {"image": rng.random((_BATCH.value, _PATCH.value, _PATCH.value, 1), np.float32),
           "image_id": np.zeros((_BATCH.value,), np.int32)}
  t = time.perf_counter()
  state, m = step(state, batch)
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - t
  t = time.perf_counter()
  for _ in range(_STEPS.value):
    state, m = step(state, batch)
  jax.block_until_ready(m)
  step_s = (time.perf_counter() - t) / _STEPS.value
  mac = macs_per_pixel(model)
  px = _BATCH.value * _PATCH.value**2
  row = {"features": features, "blocks": blocks, "params": sum(
      int(np.prod(p.shape)) for p in jax.tree.leaves(state.params)),
         "step_s": step_s, "patches_per_s": _BATCH.value / step_s,
         "train_gflops": 3 * 2 * mac * px / step_s / 1e9, "compile_s": compile_s}
  if _FWD.value:
    h, w = map(int, _FWD.value.split("x"))
    fwd = stage1.make_denoise_fn(model)
    y = jnp.asarray(rng.random((1, h, w, 1), np.float32))
    ids = jnp.zeros((1,), jnp.int32)
    jax.block_until_ready(fwd(state.params, y, ids))
    t = time.perf_counter()
    jax.block_until_ready(fwd(state.params, y, ids))
    fs = time.perf_counter() - t
    row.update(forward_s=fs, forward_mpix_s=h * w / fs / 1e6,
               forward_gflops=2 * mac * h * w / fs / 1e9)
  row["frac_of_matmul_peak"] = row["train_gflops"] / peak
  return row


def main(argv):
  del argv
  peak = matmul_gflops()
  rows = [bench(*map(int, s.split(":")), peak) for s in _SIZES.value.split(",")]
  cols = ["features", "blocks", "params", "step_s", "patches_per_s", "train_gflops",
          "frac_of_matmul_peak", "forward_s", "forward_mpix_s", "compile_s"]
  print(f"dense matmul peak measured now: {peak:.1f} GFLOP/s")
  print("| " + " | ".join(cols) + " |\n" + "|---" * len(cols) + "|")
  for r in rows:
    print("| " + " | ".join(f"{r.get(c, float('nan')):.3g}" if isinstance(r.get(c), float)
                            else str(r.get(c, "-")) for c in cols) + " |")
  if _JSON.value:
    with open(_JSON.value, "w") as f:
      json.dump({"matmul_gflops": peak, "rows": rows}, f, indent=2)


if __name__ == "__main__":
  app.run(main)
