"""Classical level of white noise in one noisy image: PCA of its weak-texture patches.

Noise that is independent between pixels adds sigma^2 to every eigenvalue of the
covariance of the image's d x d patches, while natural images put their energy in a
few leading eigenvalues. Dropping the largest eigenvalues until the rest have a mean
no larger than their median leaves the noise's share (Chen, Zhu & Heng, ICCV 2015).
Textured images leak into every eigenvalue, so the covariance is taken over the
weak-texture patches only: those whose gradient energy a noise-only patch of the
current level would reach with 99 % probability, re-selected as the level settles
(Liu, Tanaka & Okutomi, IEEE TIP 2013). Used where the noise is white and
content-independent (AWGN, or the pixel-shuffled sub-images of photos);
docs/design.md section 7 and docs/noise_level.md.
"""
import numpy as np
from scipy.special import gammaincinv

_MAX_PATCHES = 100_000  # Sampled on a stride: enough for a stable 49 x 49 covariance.
_CONFIDENCE = 0.99      # Share of noise-only patches the texture threshold keeps.


def _tail_mean(patches) -> float:
  """Chen et al.'s rule on `(n, d*d)` patches: the mean of the eigenvalues left when the
  mean no longer exceeds the median."""
  x = patches - patches.mean(axis=0)
  lam = np.sort(np.linalg.eigvalsh(x.T @ x / len(x)))[::-1]
  for i in range(len(lam)):
    tail = lam[i:]
    if tail.mean() <= np.median(tail):
      return float(max(tail.mean(), 0.0))
  return float(max(lam[-1], 0.0))


def white_noise_variance(y: np.ndarray, patch: int = 7, iterations: int = 5) -> float:
  """`y (H, W)` -> the variance of its white noise (floats, any scale)."""
  y = np.asarray(y, np.float64)
  if y.ndim != 2:
    raise ValueError(f"white_noise_variance takes one (H, W) channel, got shape {y.shape}")
  h, w = y.shape
  d = patch
  while d > 3 and (h - d + 1) * (w - d + 1) < 4 * d * d:  # Small images: smaller patches.
    d -= 2
  if min(h, w) < d or (h - d + 1) * (w - d + 1) < 2 * d * d:
    raise ValueError(f"an image of {h}x{w} pixels is too small to estimate its noise level")
  stride = max(1, int(np.ceil(np.sqrt((h - d + 1) * (w - d + 1) / _MAX_PATCHES))))
  win = np.lib.stride_tricks.sliding_window_view(y, (d, d))[::stride, ::stride]
  win = win.reshape(-1, d, d)
  texture = (np.sum(np.square(np.diff(win, axis=1)), (1, 2))
             + np.sum(np.square(np.diff(win, axis=2)), (1, 2)))
  x = win.reshape(len(win), d * d)
  # Clipped pixels (a saved photo's 0 and 255) carry no noise: leave out their patches.
  clipped = np.zeros(len(x), bool)
  for v in (y.min(), y.max()):
    if np.count_nonzero(y == v) > 8:  # Continuous data hardly repeats its extremes.
      clipped |= np.any(x == v, axis=1)
  if np.count_nonzero(~clipped) >= 2 * d * d:
    x, texture = x[~clipped], texture[~clipped]
  # For noise-only patches the texture is ~ Gamma(d^2 / 2, 2 var tr(D^T D) / d^2):
  # its mean is var tr(D^T D), with tr(D^T D) = 2 * 2 d (d - 1) for the two differences.
  scale = 2 * (4 * d * (d - 1)) / (d * d) * gammaincinv(d * d / 2, _CONFIDENCE)
  var = _tail_mean(x)
  for _ in range(iterations):
    keep = texture < scale * var
    if keep.sum() < 2 * d * d:
      break
    new = _tail_mean(x[keep])
    if abs(new - var) <= 1e-4 * var:
      return new
    var = new
  return var


def white_noise_covariance(y: np.ndarray, patch: int = 7) -> np.ndarray:
  """`y (H, W, C)` -> `(C, C)`: the covariance of white, channel-correlated noise.

  Each channel's variance by PCA; each covariance from the variance of a channel sum,
  whose noise is white too: var(n_a + n_b) = var_a + var_b + 2 cov_ab.
  """
  y = np.asarray(y, np.float64)
  c = y.shape[-1]
  var = [white_noise_variance(y[..., a], patch) for a in range(c)]
  cov = np.diag(var)
  for a in range(c):
    for b in range(a + 1, c):
      s = white_noise_variance(y[..., a] + y[..., b], patch)
      cov[a, b] = cov[b, a] = 0.5 * (s - var[a] - var[b])
  # The pairwise estimates need not form a PSD matrix: clip its eigenvalues at zero.
  vals, vecs = np.linalg.eigh(cov)
  return (vecs * np.maximum(vals, 0.0)) @ vecs.T
