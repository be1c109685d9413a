"""Is a noisy/clean pair's noise stationary? std(noisy - clean) by texture and intensity.

  python tools/noise_vs_texture.py --noisy=shared:CC15/noisy --clean=shared:CC15/clean
  python tools/noise_vs_texture.py --noisy=folder:K/noisy --clean=folder:K/clean  # camera_sim

A per-photo noise level (CNN_est's averaged modes, the PCA estimate, issue 15's "within
15 % of std(noisy - clean)") presumes noise whose std depends at most on intensity. For
each pair this prints the residual's std overall, within the quartiles of local texture
(the clean photo's Sobel gradient magnitude, averaged over channels and a 7x7 window) and
within the quartiles of intensity (the clean photo's channel mean), each as the project
measures a pair's true level (`metrics.true_noise_std`: per-channel std, mean over
channels). A ratio of the most
to the least textured quartile well above 1 means the residual grows with texture: in-
camera noise reduction or JPEG (which remove less noise in texture than in flat areas),
or a clean reference that is not perfectly aligned. Then flat-patch estimators read low
and residual-based ones read high against the all-pixel truth. 0-255 scale.
"""
import json

import numpy as np
from absl import app, flags
from scipy import ndimage

from dbsn_jax import metrics
from dbsn_jax.data import sources


def texture(clean: np.ndarray, window: int = 7) -> np.ndarray:
  """`(H, W, C)` in [0, 1] -> `(H, W)` Sobel gradient magnitude, channel mean, box-averaged."""
  g = [np.hypot(ndimage.sobel(clean[..., k], 0), ndimage.sobel(clean[..., k], 1))
       for k in range(clean.shape[-1])]
  return ndimage.uniform_filter(np.mean(g, axis=0), window)


def binned_std(noisy: np.ndarray, clean: np.ndarray, key: np.ndarray, bins: int) -> list:
  """True noise std (0-255) of the pair `(H, W, C)` over the pixels in each of `bins`
  quantile bins of `key (H, W)` (lowest first); equal-count bins, ties broken by position
  so none is empty."""
  order = np.argsort(key, axis=None, kind="stable")
  n, c = (a.reshape(-1, a.shape[-1]) for a in (noisy, clean))
  return [float(metrics.true_noise_std(n[part], c[part]).mean())
          for part in np.array_split(order, bins)]


def profile(noisy: np.ndarray, clean: np.ndarray, bins: int = 4) -> dict:
  """One pair `(H, W, C)` in [0, 1] -> its true noise std overall / by texture / by
  intensity, 0-255 scale, and the ratio of the most to the least textured bin."""
  if noisy.shape != clean.shape:
    raise ValueError(f"noisy {noisy.shape} and clean {clean.shape} differ in shape")
  c = clean.astype(np.float64)
  by_tex = binned_std(noisy, c, texture(c), bins)
  by_int = binned_std(noisy, c, c.mean(-1), bins)
  return {"std": float(metrics.true_noise_std(noisy, c).mean()), "by_texture": by_tex,
          "by_intensity": by_int, "texture_ratio": by_tex[-1] / by_tex[0]}


def table(rows: list) -> str:
  """Markdown: a row per photo and the mean over photos."""
  head = ("| photo | std | by texture, flat to textured | textured / flat | by intensity, "
          "dark to bright |\n|---|---|---|---|---|")
  fmt = lambda v: " ".join(f"{x:.2f}" for x in v)  # noqa: E731
  lines = [head]
  for r in rows:
    lines.append(f"| {r['name']} | {r['std']:.2f} | {fmt(r['by_texture'])} | "
                 f"{r['texture_ratio']:.2f} | {fmt(r['by_intensity'])} |")
  mean = lambda k: np.mean([r[k] for r in rows], axis=0)  # noqa: E731
  lines.append(f"| mean of {len(rows)} | {mean('std'):.2f} | {fmt(mean('by_texture'))} | "
               f"{mean('texture_ratio'):.2f} | {fmt(mean('by_intensity'))} |")
  return "\n".join(lines)


def define_flags():
  """The binary's flags; defined only when run as a script, so that tests can import this
  module beside other tools that define flags of the same names (--clean, --json)."""
  flags.DEFINE_string("noisy", "shared:CC15/noisy", "Noisy photos (image source spec).")
  flags.DEFINE_string("clean", "shared:CC15/clean", "Their clean photos, same names.")
  flags.DEFINE_integer("bins", 4, "Quantile bins of texture and of intensity.")
  flags.DEFINE_string("json", "", "Write the per-photo rows here.")


def main(argv):
  del argv
  f = flags.FLAGS
  noisy, clean = sources.load(f.noisy, 3), sources.load(f.clean, 3)
  missing = sorted(set(noisy.names) - set(clean.names))
  if missing:
    raise app.UsageError(f"--clean={f.clean} lacks the clean photos of {missing[:5]}")
  by_name = dict(zip(clean.names, clean.images))
  rows = []
  for name, y in zip(noisy.names, noisy.images):
    try:
      rows.append({"name": name, **profile(y, by_name[name], f.bins)})
    except ValueError as e:
      raise app.UsageError(f"{name}: {e}") from None
  print(table(rows))
  if f.json:
    with open(f.json, "w") as out:
      json.dump(rows, out, indent=1)


if __name__ == "__main__":
  define_flags()
  app.run(main)
