"""Inference time and compile counts of trained denoisers, as a table.

  python tools/benchmark_inference.py --models=gray-awgn25,color-awgn,runs/s1 [--sizes=320x480]

For each model: seconds per image at each size (after compilation), and for 20 random
image sizes the compilations of the network (size buckets bound them), all XLA
compilations (the network's and anything else a new size compiles) and the seconds
they all took.
"""
import time

import jax
import numpy as np
from absl import app, flags

from dbsn_jax.inference import load_denoiser

_MODELS = flags.DEFINE_string("models", "gray-awgn25", "Comma-separated models.")
_SIZES = flags.DEFINE_string("sizes", "320x480", "Comma-separated HxW sizes.")
_RANDOM = flags.DEFINE_integer("random_sizes", 20, "Random sizes for the compile count.")


def main(argv):
  del argv
  rng = np.random.default_rng(0)
  compiles = []  # Every XLA compilation in this process.
  jax.monitoring.register_event_duration_secs_listener(
      lambda event, secs, **_: compiles.append(secs)
      if event == "/jax/core/compile/backend_compile_duration" else None)
  n = _RANDOM.value
  print(f"| model | kind | C | size | s / image | {n} random sizes: network compiles | "
        "XLA compiles | s |")
  print("|---|---|---|---|---|---|---|---|")
  for name in _MODELS.value.split(","):
    d = load_denoiser(name)
    for size in _SIZES.value.split(","):
      h, w = map(int, size.split("x"))
      img = rng.random((h, w, d.channels)).astype(np.float32)
      d(img)
      t = time.perf_counter()
      for _ in range(3):
        d(img)
      per = (time.perf_counter() - t) / 3
      before, xla, t = d.traces, len(compiles), time.perf_counter()
      for _ in range(n):
        d(rng.random((int(rng.integers(64, 640)), int(rng.integers(64, 640)), d.channels))
          .astype(np.float32))
      print(f"| {name} | {d.kind} | {d.channels} | {h}x{w} | {per:.3f} | "
            f"{d.traces - before} | {len(compiles) - xla} | {time.perf_counter() - t:.1f} |")


if __name__ == "__main__":
  app.run(main)
