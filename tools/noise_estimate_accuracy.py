"""Accuracy of the classical white-noise estimate (`dbsn_jax.noise_estimate`) on a set.

  python tools/noise_estimate_accuracy.py --source=shared:BSD68 --channels=1 \
      --noise=5,15,25,50 [--quantize]

Adds seeded AWGN of each level to every image (optionally rounded to 8 bits, as a saved
photo is) and prints the estimate's error against the level: mean, mean absolute and
worst relative error over the images (std, 0-255 scale).
"""
import time

import numpy as np
from absl import app, flags

from dbsn_jax import noise_estimate
from dbsn_jax.data import sources

_SOURCE = flags.DEFINE_string("source", "shared:BSD68", "Clean images (a source spec).")
_CHANNELS = flags.DEFINE_integer("channels", 1, "1 (gray) or 3 (colour).")
_NOISE = flags.DEFINE_list("noise", ["5", "15", "25", "50"], "AWGN stds (0-255).")
_QUANTIZE = flags.DEFINE_bool("quantize", False, "Clip and round the noisy images to 8 bits.")
_SEED = flags.DEFINE_integer("seed", 0, "Noise seed.")


def errors(images, sigma: float, quantize: bool, seed: int) -> np.ndarray:
  """Relative error of the estimated std on each image with AWGN `sigma` (0-255)."""
  rng = np.random.default_rng(seed)
  estimate = noise_estimate.white_noise_covariance  # Jitted: one compile per size.
  out = []
  for x in images:
    y = x + sigma / 255 * rng.standard_normal(x.shape)
    if quantize:
      y = np.round(np.clip(y, 0, 1) * 255) / 255
    cov = np.asarray(estimate(y.astype(np.float32)))
    out.append(np.sqrt(np.mean(np.diag(cov))) * 255 / sigma - 1)
  return np.asarray(out)


def main(argv):
  del argv
  data = sources.load(_SOURCE.value, _CHANNELS.value)
  print(f"{_SOURCE.value}: {len(data)} images, channels={_CHANNELS.value}, "
        f"quantize={_QUANTIZE.value}")
  print("| sigma | mean rel. error | mean abs. rel. error | worst | seconds / image |")
  print("|---|---|---|---|---|")
  for s in _NOISE.value:
    t = time.time()
    e = errors(data.images, float(s), _QUANTIZE.value, _SEED.value)
    dt = (time.time() - t) / len(data)
    print(f"| {s} | {e.mean():+.1%} | {np.abs(e).mean():.1%} | {e[np.argmax(np.abs(e))]:+.1%} "
          f"| {dt:.2f} |")


if __name__ == "__main__":
  app.run(main)
