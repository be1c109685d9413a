"""Image-quality metrics with the paper's protocol (docs/design.md section 9).

PSNR on clip(x_hat, 0, 1) against the clean image, data range 1, over all channels,
no border crop; SSIM with an 11x11 Gaussian window, sigma 1.5 (dm-pix).
"""
from typing import Callable, Dict, List, Mapping, Sequence

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np


def psnr(pred, target):
  """Per-image PSNR in dB of `(B, H, W, C)` (or `(H, W, C)`) after clipping pred."""
  pred = jnp.clip(pred.astype(jnp.float32), 0.0, 1.0)
  err = jnp.mean(jnp.square(pred - target.astype(jnp.float32)), axis=(-3, -2, -1))
  return 10.0 * jnp.log10(1.0 / jnp.maximum(err, 1e-20))


def ssim(pred, target):
  """Per-image SSIM (Gaussian window 11, sigma 1.5, data range 1) after clipping pred."""
  pred = jnp.clip(pred.astype(jnp.float32), 0.0, 1.0)
  return dm_pix.ssim(pred, target.astype(jnp.float32), max_val=1.0,
                     filter_size=11, filter_sigma=1.5)


def noise_std_error(est_cov, true_cov):
  """Mean absolute error of the per-channel noise std, on the 0-255 scale."""
  est = jnp.sqrt(jnp.maximum(jnp.diagonal(est_cov, axis1=-2, axis2=-1), 0.0))
  true = jnp.sqrt(jnp.maximum(jnp.diagonal(true_cov, axis1=-2, axis2=-1), 0.0))
  return 255.0 * jnp.mean(jnp.abs(est - true))


def rms_std(cov) -> np.ndarray:
  """Per-channel RMS noise std, 0-255 scale, of covariances `(..., C, C)`: sqrt of the
  mean variance, the quantity std(noisy - clean) measures."""
  var = np.diagonal(np.asarray(cov, np.float64), axis1=-2, axis2=-1)
  return 255.0 * np.sqrt(var.reshape(-1, var.shape[-1]).mean(0))


def true_noise_std(noisy, clean, cov=None) -> np.ndarray:
  """Per-channel true noise std (0-255) of one image: from the synthetic covariance
  `(H, W, C, C)` when known, else std(noisy - clean) of the pair."""
  if cov is not None:
    return rms_std(cov)
  d = (np.asarray(noisy, np.float64) - np.asarray(clean, np.float64)).reshape(-1, noisy.shape[-1])
  return 255.0 * d.std(0)


@jax.jit
def _psnr_ssim(pred, clean):
  """One compiled program per image size, not one per operation of dm-pix's SSIM."""
  p, x = pred.astype(jnp.float32)[None], clean.astype(jnp.float32)[None]
  return psnr(p, x)[0], ssim(p, x)[0]


def image_scores(pred, clean) -> Dict[str, float]:
  """PSNR / SSIM of one `(H, W, C)` prediction (clipped inside) against its clean image."""
  p, s = _psnr_ssim(jnp.asarray(pred, jnp.float32), jnp.asarray(clean, jnp.float32))
  return {"psnr": float(p), "ssim": float(s)}


# -- the one evaluator: per-image rows, then one summary ---------------------------------
# Training-time evaluation (both stages), dbsn-eval and the model-card scores all score
# through these, so their numbers cannot drift apart.
Row = Dict[str, object]


def image_rows(name: str, outputs: Mapping[str, object], clean) -> List[Row]:
  """`{image, method, psnr, ssim}` per method of one image's `{method: (H, W, C)}`."""
  return [{"image": name, "method": m, **image_scores(out, clean)} for m, out in outputs.items()]


def score_set(predict: Callable[[int, object], Mapping[str, object]], noisy: Sequence,
              clean: Sequence, names: Sequence[str] = None) -> List[Row]:
  """Per-image rows of every method `predict(i, y) -> {method: (H, W, C)}` gives."""
  rows = []
  for i, (y, x) in enumerate(zip(noisy, clean)):
    rows += image_rows(names[i] if names is not None else str(i), predict(i, y), x)
  return rows


def summarize(rows: Sequence[Row]) -> Dict[str, Dict[str, float]]:
  """Mean PSNR / SSIM per method over per-image rows: {method: {psnr, ssim, num_images}}."""
  out: Dict[str, list] = {}
  for r in rows:
    out.setdefault(r["method"], []).append((r["psnr"], r["ssim"]))
  return {m: {"psnr": float(np.mean([v[0] for v in vs])),
              "ssim": float(np.mean([v[1] for v in vs])), "num_images": len(vs)}
          for m, vs in out.items()}


def flat_means(summary: Mapping[str, Mapping[str, float]]) -> Dict[str, float]:
  """`{method: {psnr, ssim}}` -> `{psnr_<method>, ssim_<method>}` (training logs)."""
  return {f"{k}_{m}": float(v[k]) for m, v in summary.items() for k in ("psnr", "ssim")}
