"""Synthetic noise models of docs/design.md section 5, pure functions of an explicit PRNG key.

Every function takes `(key, x)` with clean `x (B, H, W, C)` in [0, 1] and returns
`(y, var)`: the noisy batch (not clipped) and the true per-pixel noise covariance
`(B, H, W, C, C)` for evaluating learned noise models. Noise levels are given on the
0-255 scale, as in the literature, and divided by 255 here.
"""
import jax
import jax.numpy as jnp

from dbsn_jax import prng

KINDS = ("none", "awgn", "awgn_range", "awgn_per_image", "hetero", "multivariate",
         "poisson_gaussian")


def _diag_cov(var, channels):
  """`(B, H, W, C)` variances (or broadcastable) -> `(B, H, W, C, C)` diagonal."""
  return var[..., :, None] * jnp.eye(channels)


def awgn(key, x, sigma: float = 25.0):
  """y = x + sigma z, one sigma (0-255 scale) for all images."""
  s = sigma / 255.0
  y = x + s * prng.normal(key, x.shape, x.dtype)
  return y, _diag_cov(jnp.full(x.shape, s * s, x.dtype), x.shape[-1])


def awgn_range(key, x, sigma_min: float = 5.0, sigma_max: float = 50.0):
  """AWGN with sigma drawn per image, uniformly in [sigma_min, sigma_max] (0-255)."""
  k_sigma, k_noise = jax.random.split(key)
  s = jax.random.uniform(k_sigma, (x.shape[0], 1, 1, 1), x.dtype,
                         sigma_min / 255.0, sigma_max / 255.0)
  y = x + s * prng.normal(k_noise, x.shape, x.dtype)
  return y, _diag_cov(jnp.broadcast_to(s * s, x.shape), x.shape[-1])


def image_sigma(image_ids, sigma_min: float, sigma_max: float, seed: int = 0):
  """A fixed sigma (0-255 scale) per image id, uniform in [sigma_min, sigma_max]."""
  u = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(jax.random.PRNGKey(seed), i)))(
      jnp.asarray(image_ids))
  return sigma_min + (sigma_max - sigma_min) * u


def awgn_per_image(key, x, image_ids, sigma_min: float = 5.0, sigma_max: float = 50.0,
                   seed: int = 0):
  """AWGN whose sigma is fixed for each image (a noisy set whose level varies by image)."""
  s = (image_sigma(image_ids, sigma_min, sigma_max, seed) / 255.0)[:, None, None, None]
  y = x + s * prng.normal(key, x.shape, x.dtype)
  return y, _diag_cov(jnp.broadcast_to(s * s, x.shape).astype(x.dtype), x.shape[-1])


def hetero(key, x, alpha: float = 40.0, delta: float = 10.0, form: str = "paper"):
  """Heteroscedastic Gaussian noise (0-255 scale alpha, delta).

  form='paper':     var = alpha^2 x + delta^2 (the paper's formula);
  form='reference': y = x + alpha x z1 + delta z2, var = alpha^2 x^2 + delta^2 (the
                    reference code, which produced the paper's HG numbers).
  """
  a, d = alpha / 255.0, delta / 255.0
  if form == "paper":
    var = a * a * jnp.maximum(x, 0.0) + d * d
    y = x + jnp.sqrt(var) * prng.normal(key, x.shape, x.dtype)
  elif form == "reference":
    k1, k2 = jax.random.split(key)
    var = a * a * x * x + d * d
    y = (x + a * x * prng.normal(k1, x.shape, x.dtype)
         + d * prng.normal(k2, x.shape, x.dtype))
  else:
    raise ValueError(f"noise.hetero_form must be 'paper' or 'reference', got {form!r}")
  return y, _diag_cov(var, x.shape[-1])


def multivariate(key, x, scale: float = 75.0):
  """Channel-correlated Gaussian: Sigma = (scale/255)^2 U diag(l) U^T per image.

  U is a random orthogonal matrix (QR of a Gaussian, sign-fixed) and l ~ U(0, 1)^C.
  """
  b, c = x.shape[0], x.shape[-1]
  k_u, k_l, k_z = jax.random.split(key, 3)
  q, r = jnp.linalg.qr(jax.random.normal(k_u, (b, c, c), x.dtype))
  u = q * jnp.sign(jnp.diagonal(r, axis1=-2, axis2=-1))[:, None, :]  # Haar-distributed.
  lam = jax.random.uniform(k_l, (b, c), x.dtype)
  s = scale / 255.0
  cov = s * s * (u * lam[:, None, :]) @ jnp.swapaxes(u, -1, -2)  # (B, C, C)
  factor = u * jnp.sqrt(lam)[:, None, :] * s  # cov = factor factor^T
  z = prng.normal(k_z, x.shape, x.dtype)
  y = x + jnp.einsum("bij,bhwj->bhwi", factor, z)
  return y, jnp.broadcast_to(cov[:, None, None], x.shape + (c,))


def poisson_gaussian(key, x, lam: float = 30.0, sigma: float = 10.0):
  """y = Poisson(lam x) / lam + N(0, (sigma/255)^2); var = x / lam + (sigma/255)^2."""
  k_p, k_g = jax.random.split(key)
  s = sigma / 255.0
  counts = prng.poisson(k_p, lam * jnp.maximum(x, 0.0), x.shape).astype(x.dtype)
  y = counts / lam + s * prng.normal(k_g, x.shape, x.dtype)
  return y, _diag_cov(jnp.maximum(x, 0.0) / lam + s * s, x.shape[-1])


def from_config(cfg):
  """The noise function a `noise` config names: `(key, x, image_ids) -> (y, cov)`.

  Returns None for kind 'none' (the images are already noisy).
  """
  fn = _from_config(cfg)
  if fn is None or cfg.kind == "awgn_per_image":
    return fn
  return lambda k, x, image_ids=None: fn(k, x)


def _from_config(cfg):
  kind = cfg.kind
  if kind == "none":
    return None
  if kind == "awgn":
    if cfg.sigma < 0:
      raise ValueError(f"noise.sigma must be >= 0, got {cfg.sigma}")
    return lambda k, x: awgn(k, x, cfg.sigma)
  if kind == "awgn_range":
    lo, hi = cfg.sigma_range
    if not 0 <= lo <= hi:
      raise ValueError(f"noise.sigma_range must satisfy 0 <= min <= max, got {cfg.sigma_range}")
    return lambda k, x: awgn_range(k, x, lo, hi)
  if kind == "awgn_per_image":
    lo, hi = cfg.sigma_range
    if not 0 <= lo <= hi:
      raise ValueError(f"noise.sigma_range must satisfy 0 <= min <= max, got {cfg.sigma_range}")
    return lambda k, x, image_ids: awgn_per_image(k, x, image_ids, lo, hi)
  if kind == "hetero":
    if cfg.alpha < 0 or cfg.delta < 0:
      raise ValueError(f"noise.alpha and noise.delta must be >= 0, got {cfg.alpha}, {cfg.delta}")
    return lambda k, x: hetero(k, x, cfg.alpha, cfg.delta, cfg.hetero_form)
  if kind == "multivariate":
    return lambda k, x: multivariate(k, x, cfg.mg_scale)
  if kind == "poisson_gaussian":
    if cfg.pg_lambda <= 0:
      raise ValueError(f"noise.pg_lambda must be > 0, got {cfg.pg_lambda}")
    return lambda k, x: poisson_gaussian(k, x, cfg.pg_lambda, cfg.sigma)
  raise ValueError(f"noise.kind must be one of {KINDS}, got {kind!r}")
