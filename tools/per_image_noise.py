"""Per-image learned noise level of a stage-1 run against the truth, on its training images.

  python tools/per_image_noise.py --workdir=runs/color/stage1 [--crop=128] [--json=F]
  python tools/per_image_noise.py --workdir=runs/cc15_s1 --clean=shared:CC15/clean --crop=0

For a run whose noisy set is synthetic (e.g. `cpu_budget.py:color_range`: every noisy
image i has its own AWGN sigma_i), each training image gets a fresh noise draw with its
own level; the learned std of its CNN_est (`known`: the model with its id) and of the
model picked blind (`picked`: the per-image model of highest likelihood, as for an
unseen image) are set against the true std, beside the classical PCA estimate of the
same noisy crop (`estimated`, `dbsn_jax.noise_estimate`: what
`distill.noise_levels='estimated'` synthesises). Prints the error overall and by true level
(0-255 scale). For real noise (`noise.kind='none'`), `--clean` names the clean photos
of the training images (same names): the truth is std(noisy - clean), and the PCA
estimate is taken on each of the f^2 sub-images of down-sampling by f, where camera
noise is close to white, as `distill.noise_levels='estimated'` does.
"""
import json

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from dbsn_jax import noise, predict, realworld
from dbsn_jax.data import noisy_sets, sources
from dbsn_jax.train import stage1, stage2

_WORKDIR = flags.DEFINE_string("workdir", None, "A stage-1 workdir (synthetic noise).")
_CROP = flags.DEFINE_integer("crop", 128, "Centre crop side per image (0: full images).")
_SEED = flags.DEFINE_integer("seed", 7, "Noise seed (image i: fold_in(seed, i)).")
_JSON = flags.DEFINE_string("json", "", "Write the per-image rows here.")
_CLEAN = flags.DEFINE_string("clean", "", "Real noise: the training images' clean photos.")


def rows_for(config, model, params, images, names, crop: int = 128, seed: int = 7,
             clean=None):
  """Per training image `images[i]` (id i): name, true std, learned std with its own
  model (`known`), for per-image models with the model picked blind (`picked`), and the
  PCA estimate (`estimated`). Synthetic noise gets a fresh draw of image i's level; real
  noise (`noise.kind='none'`) needs `clean`, image i's clean photo, and is measured on
  the noisy image itself."""
  add = noise.from_config(config.noise)
  if add is None and clean is None:
    raise ValueError("noise.kind='none' (real noise) has no known truth without the clean "
                     "photos: pass --clean=SOURCE (the training images' clean versions)")
  rw = realworld.settings(config)
  known, blind = predict.make_denoise_fn(model, rw), predict.make_image_denoiser(model, rw)
  per_image = bool(config.noise_model.per_image)
  cut = (lambda a: noisy_sets.centre_crop(a, crop) if crop else a)  # noqa: E731
  rows = []
  for i, (img, name) in enumerate(zip(images, names)):
    ids = jnp.array([i], jnp.int32)
    if add is None:
      y = jnp.asarray(cut(img))[None]
      true = stage1.true_noise_std(np.asarray(y[0]), cut(clean[i]))
    else:
      y, cov = add(jax.random.fold_in(jax.random.PRNGKey(seed), i), jnp.asarray(cut(img))[None],
                   ids)
      true = stage1.rms_std(cov)
    out = known(params, y, realworld.model_ids(ids, rw, per_image))
    row = {"name": name, "true": float(true.mean()),
           "known": float(stage1.rms_std(predict.learned_noise(out)).mean())}
    if per_image:
      row["picked"] = float(stage1.rms_std(predict.learned_noise(blind(params, y))).mean())
    # What stage 2's 'estimated' levels are: one estimate per down-sampling phase.
    levels = stage2.estimated_levels([np.asarray(y[0])], rw.downsample)
    row["estimated"] = float(stage1.rms_std(levels).mean())
    rows.append(row)
  return rows


def table(rows) -> str:
  """Mean absolute and relative errors, overall and by thirds of the true level."""
  cols = [k for k in ("known", "picked", "estimated") if k in rows[0]]
  true = np.array([r["true"] for r in rows])
  edges = np.quantile(true, [0, 1 / 3, 2 / 3, 1])
  lines = ["| images | true std | " + " | ".join(
      f"{c}: mean abs error / mean rel error" for c in cols) + " |",
      "|---|---|" + "---|" * len(cols)]
  bins = [("all", np.ones_like(true, bool))] + [
      (f"{lo:.1f}-{hi:.1f}", (true >= lo) & (true <= hi)) for lo, hi in zip(edges, edges[1:])]
  for label, m in bins:
    cells = []
    for c in cols:
      v = np.array([r[c] for r in rows])[m]
      cells.append(f"{np.mean(np.abs(v - true[m])):.2f} / {np.mean(v / true[m] - 1):+.1%}")
    lines.append(f"| {label} ({m.sum()}) | {true[m].mean():.2f} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main(argv):
  del argv
  config, model, params = stage1.load(_WORKDIR.value)
  train = sources.load(config.data.train, config.channels, config.data.train_start,
                       config.data.train_stop or None)
  clean = None
  if _CLEAN.value:
    pairs = sources.load(_CLEAN.value, config.channels)
    by_name = dict(zip(pairs.names, pairs.images))
    missing = [n for n in train.names if n not in by_name]
    if missing:
      raise SystemExit(f"--clean={_CLEAN.value} has no photo named {missing[0]!r}")
    clean = [by_name[n] for n in train.names]
  rows = rows_for(config, model, params, train.images, train.names, _CROP.value, _SEED.value,
                  clean)
  print(table(rows))
  if _JSON.value:
    with open(_JSON.value, "w") as f:
      json.dump(rows, f, indent=2)


if __name__ == "__main__":
  flags.mark_flag_as_required("workdir")
  app.run(main)
