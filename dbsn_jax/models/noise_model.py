"""CNN_est: a per-pixel MLP (1x1 convs) that predicts the noise covariance Sigma_n.

Only 1x1 convs, so the noise at a pixel depends on that pixel's value alone
(docs/design.md section 3).
With `num_models > 0` every noisy training image gets its own MLP (the paper's
image-specific form): the weights are a table indexed by image id, gathered per batch.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from dbsn_jax.models import covariance
from dbsn_jax.models.layers import he_normal

MODES = ("awgn", "hetero", "multivariate", "hetero_multivariate")
_PER_PIXEL = ("hetero", "hetero_multivariate")  # Modes not averaged over the image.
_FULL = ("multivariate", "hetero_multivariate")  # Modes with a full C x C covariance.


class NoiseEstimator(nn.Module):
  """`x (B, H, W, C)` (and image ids `(B,)`) -> `Sigma_n (B, H, W, C, C)`.

  Modes: 'awgn' (diagonal, averaged over pixels: one sigma per image and channel),
  'hetero' (diagonal, per pixel), 'multivariate' (full C x C, averaged over pixels),
  'hetero_multivariate' (full C x C per pixel: signal-dependent, channel-correlated
  noise as in demosaicked camera photos; paper section 3.2's Sigma_n(x)).
  Output transform of the reference: s = softplus(out - 4) + 1e-3 on L's diagonal,
  with the last layer zero-initialised, so the initial std is ~0.019 (~5/255).
  """
  channels: int = 1
  mode: str = "awgn"
  features: int = 16
  hidden_layers: int = 3
  num_models: int = 0
  offset: float = 4.0
  floor: float = 1e-3

  def _dense(self, x, ids, cout, name, kernel_init):
    cin = x.shape[-1]
    lead = (self.num_models,) if self.num_models else ()
    w = self.param(f"{name}_kernel", kernel_init, lead + (cin, cout))
    b = self.param(f"{name}_bias", nn.initializers.zeros, lead + (cout,))
    if not self.num_models:
      return jnp.einsum("bhwc,cd->bhwd", x, w) + b
    # Image-specific weights: gather one MLP per batch element.
    return jnp.einsum("bhwc,bcd->bhwd", x, w[ids]) + b[ids][:, None, None, :]

  @nn.compact
  def __call__(self, x, image_ids=None, mask=None):
    """`mask (B, H, W, 1)`, optional: the pixels the per-image average runs over (the
    image inside a padded canvas)."""
    if self.mode not in MODES:
      raise ValueError(f"noise_model.mode must be one of {MODES}, got {self.mode!r}")
    if self.num_models and image_ids is None:
      raise ValueError("an image-specific NoiseEstimator needs image_ids")
    if self.num_models:
      image_ids = jnp.clip(image_ids, 0, self.num_models - 1)
    def init(key, shape, dtype=jnp.float32):
      if not self.num_models:
        return he_normal(key, shape, dtype)
      # One vmapped draw for the whole table: the traced program, and so the compile
      # time, does not grow with the number of images.
      keys = jax.random.split(key, self.num_models)
      return jax.vmap(lambda k: he_normal(k, shape[-2:], dtype))(keys)
    h = x.astype(jnp.float32)
    for i in range(self.hidden_layers + 1):
      h = nn.relu(self._dense(h, image_ids, self.features, f"layer{i}", init))
    form = "full" if self.mode in _FULL else "diag"
    q = covariance.num_outputs(self.channels, form)
    out = self._dense(h, image_ids, q, "out", nn.initializers.zeros)
    if self.mode not in _PER_PIXEL:
      if mask is None:
        mean = out.mean(axis=(1, 2), keepdims=True)
      else:
        m = mask.astype(out.dtype)
        mean = jnp.sum(out * m, axis=(1, 2), keepdims=True) / jnp.maximum(
            jnp.sum(m, axis=(1, 2), keepdims=True), 1.0)
      out = jnp.broadcast_to(mean, out.shape)
    std = lambda v: jax.nn.softplus(v - self.offset) + self.floor  # noqa: E731
    return covariance.to_covariance(out, self.channels, form, std)
