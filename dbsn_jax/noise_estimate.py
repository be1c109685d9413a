"""Classical level of white noise in one noisy image: PCA of its weak-texture patches.

Noise that is independent between pixels adds sigma^2 to every eigenvalue of the
covariance of the image's d x d patches, while natural images put their energy in a
few leading eigenvalues. Dropping the largest eigenvalues until the rest have a mean
no larger than their median leaves the noise's share (Chen, Zhu & Heng, ICCV 2015).
Textured images leak into every eigenvalue, so the covariance is taken over the
weak-texture patches only: those whose gradient energy a noise-only patch of the
current level would reach with 99 % probability, re-selected as the level settles
(Liu, Tanaka & Okutomi, IEEE TIP 2013). Pure JAX with static shapes, so it runs under
`jax.jit`; the public functions are jitted themselves, so that a call outside a
program compiles once per image size, not once per operation. Used where the noise is
white and content-independent (AWGN); docs/design.md sections 4 and 7,
docs/noise_level.md.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import gammaincinv

_MAX_PATCHES = 100_000  # Sampled on a stride: enough for a stable 49 x 49 covariance.
_CONFIDENCE = 0.99      # Share of noise-only patches the texture threshold keeps.
_ITERATIONS = 5
_MIN_EIGEN_RATIO = 1e-3  # Of a colour covariance's eigenvalues, smallest to largest.


def patch_size(h: int, w: int, patch: int = 7) -> int:
  """The patch side used for an `h x w` image (smaller for small images); raises if
  the image is too small to measure."""
  d = patch
  while d > 3 and (h - d + 1) * (w - d + 1) < 4 * d * d:
    d -= 2
  if min(h, w) < d or (h - d + 1) * (w - d + 1) < 2 * d * d:
    raise ValueError(f"an image of {h}x{w} pixels is too small to estimate its noise level")
  return d


def _patches(y, d: int):
  """`(H, W)` -> `(n, d*d)` patches on a stride that keeps n <= _MAX_PATCHES."""
  h, w = y.shape
  nh, nw = h - d + 1, w - d + 1
  s = max(1, int(np.ceil(np.sqrt(nh * nw / _MAX_PATCHES))))
  rows, cols = -(-nh // s), -(-nw // s)
  taps = [y[a:a + (rows - 1) * s + 1:s, b:b + (cols - 1) * s + 1:s]
          for a in range(d) for b in range(d)]
  return jnp.stack(taps, -1).reshape(rows * cols, d * d)


def _tail_mean(x, keep):
  """Chen et al.'s rule on the kept rows of `x (n, d*d)`: the mean of the eigenvalues
  left once dropping the largest makes their mean no larger than their median."""
  wgt = keep.astype(x.dtype)
  total = jnp.maximum(wgt.sum(), 1.0)
  centred = x - (wgt @ x) / total
  cov = (centred * wgt[:, None]).T @ centred / total
  lam = jnp.sort(jnp.linalg.eigvalsh(cov))[::-1]
  k = lam.shape[0]
  length = k - jnp.arange(k)                           # Tail lam[i:] has k - i values.
  means = jnp.cumsum(lam[::-1])[::-1] / length
  i = jnp.arange(k)
  median = 0.5 * (lam[i + (length - 1) // 2] + lam[i + length // 2])
  ok = means <= median
  first = jnp.where(ok.any(), jnp.argmax(ok), k - 1)
  return jnp.maximum(means[first], 0.0)


@functools.partial(jax.jit, static_argnames="patch")
def white_noise_variance(y, patch: int = 7, valid=None):
  """`y (H, W)` -> the variance of its white noise (a scalar; any value scale).
  `valid (H, W)`: the image inside a padded canvas; only patches wholly inside count."""
  y = jnp.asarray(y, jnp.float32)
  if y.ndim != 2:
    raise ValueError(f"white_noise_variance takes one (H, W) channel, got shape {y.shape}")
  d = patch_size(*y.shape, patch)
  x = _patches(y, d)
  if valid is None:
    inside, keep = jnp.ones(y.shape, bool), jnp.ones(x.shape[0], bool)
  else:
    inside = jnp.asarray(valid) > 0
    keep = jnp.all(_patches(inside.astype(jnp.float32), d) > 0, axis=1)
  # Clipped pixels (a saved photo's 0 and 255) carry no noise: leave out their patches
  # when an extreme value repeats, which continuous data hardly does.
  for v in (jnp.min(jnp.where(inside, y, jnp.inf)), jnp.max(jnp.where(inside, y, -jnp.inf))):
    repeated = jnp.sum(inside & (y == v)) > 8
    keep &= ~(repeated & jnp.any(x == v, axis=1))
  grid = x.reshape(-1, d, d)
  texture = (jnp.sum(jnp.square(jnp.diff(grid, axis=1)), (1, 2))
             + jnp.sum(jnp.square(jnp.diff(grid, axis=2)), (1, 2)))
  # A noise-only patch's texture is ~ Gamma(d^2 / 2, 2 var tr(D^T D) / d^2), whose mean
  # is var tr(D^T D), tr(D^T D) = 2 * 2 d (d - 1) for the two difference operators.
  scale = float(2 * (4 * d * (d - 1)) / (d * d) * gammaincinv(d * d / 2, _CONFIDENCE))

  def reselect(_, var):
    selected = keep & (texture < scale * var)
    return jnp.where(selected.sum() >= 2 * d * d, _tail_mean(x, selected), var)
  # A loop, not unrolled: one copy of the PCA in the program keeps compiles short.
  return jax.lax.fori_loop(0, _ITERATIONS, reselect, _tail_mean(x, keep))


@functools.partial(jax.jit, static_argnames="patch")
def white_noise_variances(y, patch: int = 7, valid=None):
  """`y (H, W, C)` -> `(C,)`: each channel's white-noise variance, the diagonal of
  `white_noise_covariance` (before its eigenvalue floor) at C / (C + C (C - 1) / 2) of
  its cost (half, in colour), for callers that need only the level. `valid (H, W)` as
  there."""
  y = jnp.asarray(y, jnp.float32)
  return jax.vmap(lambda p: white_noise_variance(p, patch, valid), in_axes=-1)(y)


@functools.partial(jax.jit, static_argnames="patch")
def white_noise_covariance(y, patch: int = 7, valid=None):
  """`y (H, W, C)` -> `(C, C)`: the covariance of white, channel-correlated noise.
  `valid (H, W)` as in `white_noise_variance`.

  Each channel's variance by PCA; each covariance from the variance of a channel sum,
  whose noise is white too: var(n_a + n_b) = var_a + var_b + 2 cov_ab.
  """
  y = jnp.asarray(y, jnp.float32)
  c = y.shape[-1]
  pairs = [(a, b) for a in range(c) for b in range(a + 1, c)]
  planes = jnp.stack([y[..., a] for a in range(c)] + [y[..., a] + y[..., b] for a, b in pairs])
  # All C + C (C - 1) / 2 planes through one (vmapped) estimator: one copy in the program.
  var = jax.vmap(lambda p: white_noise_variance(p, patch, valid))(planes)
  cov = jnp.diag(var[:c])
  for k, (a, b) in enumerate(pairs):
    ab = 0.5 * (var[c + k] - var[a] - var[b])
    cov = cov.at[a, b].set(ab).at[b, a].set(ab)
  if c == 1:
    return cov
  # The pairwise estimates need not form a positive-definite matrix (strongly correlated
  # channels, as demosaicked camera noise has, often give a correlation above 1): floor
  # its eigenvalues at a thousandth of the largest, so that it can be factorised to
  # synthesise noise (a zero eigenvalue gave NaN Cholesky factors).
  vals, vecs = jnp.linalg.eigh(cov)
  return (vecs * jnp.maximum(vals, _MIN_EIGEN_RATIO * jnp.max(vals))) @ vecs.T
