"""How much of the real noise a stage-1 model copies into mu, on noisy / clean pairs.

A blind-spot network that sees correlated noise through its neighbours predicts part
of the pixel's noise: its error mu - clean then correlates with the noise noisy - clean.
Prints the mean per-image correlation and the PSNR of mu for each stage-1 workdir.
  python tools/noise_leak.py --workdirs=runs/cc15/stage1,runs/cc15_plain
"""
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from dbsn_jax import metrics, realworld
from dbsn_jax.data import sources
from dbsn_jax.train import stage1

_WORKDIRS = flags.DEFINE_list("workdirs", [], "Stage-1 workdirs.")
_NOISY = flags.DEFINE_string("noisy", "shared:CC15/noisy", "Noisy image source.")
_CLEAN = flags.DEFINE_string("clean", "shared:CC15/clean", "Clean images, same names.")


def main(argv):
  del argv
  rows = ["| workdir | corr(mu - clean, noise) | PSNR mu |", "|---|---|---|"]
  for wd in _WORKDIRS.value:
    config, model, params = stage1.load(wd)
    noisy = sources.load(_NOISY.value, config.channels)
    clean = sources.load(_CLEAN.value, config.channels)
    denoise = stage1.make_image_denoiser(model, realworld.settings(config))
    corr, psnr = [], []
    for y, x in zip(noisy.images, clean.images):
      mu = np.asarray(denoise(params, jnp.asarray(y)[None])["mu"][0])
      corr.append(np.corrcoef((y - x).ravel(), (mu - x).ravel())[0, 1])
      psnr.append(float(metrics.psnr(jnp.asarray(mu)[None], jnp.asarray(x)[None])[0]))
    rows.append(f"| {wd} | {np.mean(corr):.3f} | {np.mean(psnr):.2f} |")
  print("\n".join(rows))


if __name__ == "__main__":
  app.run(main)
