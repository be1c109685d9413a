"""Inference time and compile counts of trained denoisers, as a table.

  python tools/benchmark_inference.py --models=gray-awgn25,color-awgn,runs/s1 [--sizes=320x480]

For each model: seconds per image at each size (after compilation) and the number of
compilations for 20 random image sizes (size buckets bound it).
"""
import time

import numpy as np
from absl import app, flags

from dbsn_jax.inference import load_denoiser

_MODELS = flags.DEFINE_string("models", "gray-awgn25", "Comma-separated models.")
_SIZES = flags.DEFINE_string("sizes", "320x480", "Comma-separated HxW sizes.")
_RANDOM = flags.DEFINE_integer("random_sizes", 20, "Random sizes for the compile count.")


def main(argv):
  del argv
  rng = np.random.default_rng(0)
  print("| model | kind | C | size | s / image | compiles for %d random sizes |" % _RANDOM.value)
  print("|---|---|---|---|---|---|")
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
      before = d.traces
      for _ in range(_RANDOM.value):
        d(rng.random((int(rng.integers(64, 640)), int(rng.integers(64, 640)), d.channels))
          .astype(np.float32))
      print(f"| {name} | {d.kind} | {d.channels} | {h}x{w} | {per:.3f} | "
            f"{d.traces - before} |")


if __name__ == "__main__":
  app.run(main)
