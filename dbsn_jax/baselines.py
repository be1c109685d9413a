"""Learning-free baselines that dbsn-eval scores beside the models: BM3D / CBM3D given a
noise level, and the self-guided filter of the noisy photo.

Under synthetic noise BM3D gets the true level. Real noise has no known level: BM3D gets
the one a standard estimator reads off the noisy photo (what a user without ground truth
runs) or, on pairs, an oracle read off the pair itself: its per-channel std, or its
noise power spectrum (BM3D for correlated noise, the strongest of them on camera noise).
The `bm3d` package is optional: pip install "dbsn-jax[bm3d]".
"""
from typing import Sequence

import jax.numpy as jnp
import numpy as np

from dbsn_jax import metrics, realworld

BM3D = "BM3D"  # Synthetic noise: the true level.
BM3D_ESTIMATED = "BM3D (estimated sigma)"
BM3D_TRUE = "BM3D (true sigma)"  # BM3D still treats the noise as white.
BM3D_PSD = "BM3D (true PSD)"
# `--bm3d_sigma` names -> columns on real noise.
REAL_LEVELS = {"estimated": BM3D_ESTIMATED, "true": BM3D_TRUE, "psd": BM3D_PSD}
# The self-guided filter that stage 1 and the sub-image stage 2 end with, applied
# straight to the noisy photo. Weak camera noise (CC15) is mostly flat-region grain that
# this edge-preserving smoother removes, so a learned model has to beat it to have
# learned anything (docs/evaluation.md).
GUIDED_NOISY = "guided filter (noisy)"


def bm3d_available() -> bool:
  try:
    import bm3d  # noqa: F401
    return True
  except ImportError:
    return False


def bm3d_methods(real: bool, levels: Sequence[str] = ("estimated",)):
  """The BM3D column(s) of a case: 'BM3D' under synthetic noise; under real noise one
  per name in `levels` (keys of REAL_LEVELS)."""
  bad = [v for v in levels if v not in REAL_LEVELS]
  if bad or not levels:
    raise ValueError(f"BM3D levels on real noise must be among {', '.join(REAL_LEVELS)}, "
                     f"got {', '.join(levels) or 'none'}")
  return [BM3D] if not real else [REAL_LEVELS[v] for v in dict.fromkeys(levels)]


def bm3d_denoise(noisy: np.ndarray, cov=None, psd=None) -> np.ndarray:
  """BM3D (gray) or CBM3D (`bm3d.bm3d_rgb`) of an unclipped `(H, W, C)` image, given
  either `cov` (covariances `(..., C, C)`: BM3D gets the per-channel std, sqrt of the
  mean variance; exact for AWGN, its best single level otherwise) or `psd` `(H, W, C)`,
  the noise power spectrum per channel in the bm3d package's convention."""
  import bm3d
  z = np.asarray(noisy, np.float64)
  c = z.shape[-1]
  if psd is not None:
    _numpy2_shim()
    level = np.asarray(psd, np.float64)
    level = level[..., 0] if c == 1 else level
  else:
    level = np.maximum(metrics.rms_std(cov) / 255.0, 1e-6)
    level = float(level[0]) if c == 1 else [float(s) for s in level]
  if c == 1:
    return np.asarray(bm3d.bm3d(z[..., 0], sigma_psd=level)[..., None], np.float32)
  return np.asarray(bm3d.bm3d_rgb(z, sigma_psd=level), np.float32)


def _numpy2_shim():
  """bm3d's correlated-noise path (its bm4d dependency) calls `np.trapz`, which NumPy
  2.4 removed: hand that module a view of NumPy that still has it."""
  import bm4d
  if hasattr(bm4d.np, "trapz"):
    return

  class _NumPy:
    trapz = staticmethod(np.trapezoid)

    def __getattr__(self, name):
      return getattr(np, name)
  bm4d.np = _NumPy()


def bm3d_column(method: str, noisy: np.ndarray, clean: np.ndarray, cov=None) -> np.ndarray:
  """BM3D of `noisy (H, W, C)` for one of `bm3d_methods`' columns: the known `cov` under
  synthetic noise ('BM3D'), else the level that column reads off the photo or the pair."""
  if method == BM3D_PSD:
    return bm3d_denoise(noisy, psd=true_noise_psd(noisy, clean))
  if method == BM3D_TRUE:
    cov = true_noise_cov(noisy, clean)
  elif method == BM3D_ESTIMATED:
    cov = estimated_noise_cov(noisy)
  elif method != BM3D:
    raise ValueError(f"unknown BM3D column {method!r}")
  return bm3d_denoise(noisy, cov=cov)


def estimated_noise_cov(noisy: np.ndarray) -> np.ndarray:
  """`(C, C)` diagonal noise covariance of `noisy (H, W, C)` from the noisy image alone:
  per channel, the wavelet (MAD of the finest diagonal band) estimator of
  `skimage.restoration.estimate_sigma` (Donoho & Johnstone)."""
  from skimage.restoration import estimate_sigma
  y = np.asarray(noisy, np.float64)
  std = np.atleast_1d(estimate_sigma(y, channel_axis=-1, average_sigmas=False))
  return np.diag(np.square(std))


def true_noise_cov(noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
  """`(C, C)` diagonal covariance of a real pair: per channel, var(noisy - clean), the
  level `metrics.true_noise_std` measures."""
  return np.diag(np.square(metrics.true_noise_std(noisy, clean) / 255.0))


def true_noise_psd(noisy: np.ndarray, clean: np.ndarray, radius: int = 8) -> np.ndarray:
  """`(H, W, C)` noise power spectrum of a real pair, per channel, as the bm3d package
  takes it (white noise of variance s^2: s^2 H W at every frequency).

  The residual's autocorrelation at lags up to `radius` (demosaicking and JPEG
  correlate a few pixels), transformed: the raw periodogram would hand BM3D its own
  sampling noise. Truncation can dip below zero where the spectrum is near zero; those
  frequencies are floored at 1 % of the mean power.
  """
  r = np.asarray(noisy, np.float64) - np.asarray(clean, np.float64)
  r = r - r.mean((0, 1))
  h, w, c = r.shape
  k = int(min(radius, h // 2 - 1, w // 2 - 1))
  # Linear (zero-padded) autocorrelation, biased estimator: sum over overlaps / (H W).
  spec = np.fft.rfft2(r, s=(h + k, w + k), axes=(0, 1))
  acf = np.fft.irfft2(np.abs(spec) ** 2, s=(h + k, w + k), axes=(0, 1)) / (h * w)
  lags = np.r_[0:k + 1, -k:0]
  kernel = np.zeros((h, w, c))
  kernel[np.ix_(lags % h, lags % w)] = acf[np.ix_(lags % (h + k), lags % (w + k))]
  psd = np.real(np.fft.fft2(kernel, axes=(0, 1)))
  psd = np.maximum(psd, 0.01 * psd.mean((0, 1)))
  return psd * h * w


def guided_filter_noisy(noisy: np.ndarray) -> np.ndarray:
  """`noisy (H, W, C)` -> the self-guided filter of it with the real-photo settings'
  defaults (`realworld.Settings`: radius 1, eps 0.01)."""
  rw = realworld.Settings()
  y = jnp.asarray(noisy)[None]
  return np.asarray(realworld.guided_filter(y, y, rw.gf_radius, rw.gf_eps)[0])
