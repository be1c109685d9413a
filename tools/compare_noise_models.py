"""Shared vs image-specific CNN_est on a noisy set whose level varies by image.

  python tools/compare_noise_models.py [--images=16] [--steps=800]

Each noisy training image i has a fixed AWGN sigma_i drawn uniformly in [5, 50]
(noise.kind = awgn_per_image). Stage 1 is trained twice, identically except for
noise_model.per_image; then, for every training image, the estimated noise std is
compared with sigma_i. Prints a table of the mean / max absolute error (0-255 scale).
"""
import json
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from dbsn_jax import defaults, noise, predict
from dbsn_jax.data import sources
from dbsn_jax.train import stage1

_IMAGES = flags.DEFINE_integer("images", 16, "Noisy training images (Train400 prefix).")
_STEPS = flags.DEFINE_integer("steps", 800, "Training steps per run.")
_SOURCE = flags.DEFINE_string("source", "shared:Train400", "Image source spec.")
_JSON = flags.DEFINE_string("json", "", "Write results here.")


def config(per_image: bool):
  c = defaults.stage1()
  c.model.features, c.model.blocks = 16, (1, 1)
  c.noise.kind, c.noise.sigma_range = "awgn_per_image", (5.0, 50.0)
  c.noise_model.mode, c.noise_model.per_image = "awgn", per_image
  c.data.train, c.data.train_stop = _SOURCE.value, _IMAGES.value
  c.data.patch_size, c.data.batch_size = 48, 8
  c.eval.source = ""
  c.train.num_steps, c.train.log_every = _STEPS.value, 200
  c.train.checkpoint_every = _STEPS.value
  c.optim.lr, c.optim.milestones = 1e-3, (0.8,)
  return c


def estimate_errors(c, out):
  images = sources.load(c.data.train, 1, 0, c.data.train_stop).images
  denoise = stage1.make_denoise_fn(out["model"])
  add = noise.from_config(c.noise)
  errs = []
  for i, img in enumerate(images):
    x = jnp.asarray(img)[None]
    ids = jnp.array([i], jnp.int32)
    y, cov = add(jax.random.PRNGKey(100 + i), x, ids)
    est = predict.learned_noise(denoise(out["state"].params, y, ids))
    s_est = 255 * float(jnp.mean(jnp.sqrt(est[..., 0, 0])))
    s_true = 255 * float(jnp.sqrt(cov[0, 0, 0, 0, 0]))
    errs.append((s_true, s_est))
  return np.array(errs)


def main(argv):
  del argv
  rows = {}
  for per_image in (False, True):
    c = config(per_image)
    with tempfile.TemporaryDirectory() as wd:
      out = stage1.train_and_evaluate(c, wd)
      e = estimate_errors(c, out)
    name = "image-specific" if per_image else "shared"
    rows[name] = {"mean_abs_error": float(np.mean(np.abs(e[:, 0] - e[:, 1]))),
                  "max_abs_error": float(np.max(np.abs(e[:, 0] - e[:, 1]))),
                  "pairs": e.tolist()}
  print(f"| CNN_est ({_IMAGES.value} images, sigma_i in [5, 50], {_STEPS.value} steps) "
        "| mean abs error of sigma | max abs error |\n|---|---|---|")
  for name, r in rows.items():
    print(f"| {name} | {r['mean_abs_error']:.2f} | {r['max_abs_error']:.2f} |")
  if _JSON.value:
    with open(_JSON.value, "w") as f:
      json.dump(rows, f, indent=2)


if __name__ == "__main__":
  app.run(main)
