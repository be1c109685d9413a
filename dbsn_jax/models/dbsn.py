"""D-BSN: the dilated blind-spot network of docs/design.md section 2.

Why the output at p never sees the input at p: each branch starts with a k x k conv
whose centre tap is zero, so a feature at p sees offsets in [-r, r]^2 minus {0},
r = (k - 1) / 2. Every later layer of that branch is a 1x1 conv or a conv with
dilation d > r, which adds a multiple of d to each offset in both axes; a nonzero
offset with some |component| <= r plus multiples of d > r can never return to
(0, 0). Residual additions and concatenations of such features keep the property.
"""
from typing import Any, Sequence, Tuple

import flax.linen as nn
import jax.numpy as jnp

from dbsn_jax import prng
from dbsn_jax.models import covariance, fast_conv
from dbsn_jax.models.layers import Conv


def _scaled_he(scale: float):
  return prng.he_normal(scale)


class MDC(nn.Module):
  """Multiple dilated convolution module, `(B, H, W, F) -> (B, H, W, F)`.

  style='paper': sub-branches with 0, 1 and 2 stacked 3x3 convs of dilation d.
  style='reference': the reference code's variant, one 5x5 dilated conv replacing the
  two stacked 3x3 convs (same receptive field, more parameters).
  `valid` (`(B, H, W, 1)` of 0/1, or None) zeroes the padding pixels of space-to-batch
  sub-images before every k x k conv, as a plain conv's zero padding has them.
  """
  features: int
  dilation: int
  style: str = "paper"
  dtype: Any = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x, valid=None):
    f, d, dt, ci = self.features, self.dilation, self.dtype, self.conv_impl
    z = (lambda v: v) if valid is None else (lambda v: v * valid.astype(v.dtype))  # noqa: E731
    b1 = nn.relu(Conv(f, dtype=dt, conv_impl=ci)(x))
    if self.style == "paper":
      b1 = nn.relu(Conv(f, 3, d, dtype=dt, conv_impl=ci)(z(b1)))
      b1 = nn.relu(Conv(f, 3, d, dtype=dt, conv_impl=ci)(z(b1)))
    elif self.style == "reference":
      b1 = nn.relu(Conv(f, 5, d, dtype=dt, conv_impl=ci)(z(b1)))
    else:
      raise ValueError(f"mdc_style must be 'paper' or 'reference', got {self.style!r}")
    b2 = nn.relu(Conv(f, dtype=dt, conv_impl=ci)(x))
    b2 = nn.relu(Conv(f, 3, d, dtype=dt, conv_impl=ci)(z(b2)))
    b3 = nn.relu(Conv(f, dtype=dt, conv_impl=ci)(x))
    out = nn.relu(Conv(f, dtype=dt, conv_impl=ci)(jnp.concatenate([b1, b2, b3], -1))) + x
    out = nn.relu(Conv(f, dtype=dt, conv_impl=ci)(out))
    return nn.relu(Conv(f, dtype=dt, conv_impl=ci)(out))


class Branch(nn.Module):
  """Masked k x k conv, two 1x1 convs, `blocks` MDC(d) modules, a final 1x1.

  With space-to-batch (`fast_conv.uses_space_to_batch(conv_impl)`) everything after the
  masked conv runs on the d x d sub-images with undilated convs (docs/design.md section 2): the
  same arithmetic on contiguous data. `remat` recomputes each MDC's activations in the
  backward pass instead of storing them (memory for compute, on accelerators).
  """
  features: int
  kernel_size: int
  dilation: int
  blocks: int
  mdc_style: str = "paper"
  blind: bool = True  # False only for the negative-control test.
  dtype: Any = jnp.float32
  conv_impl: str = "auto"
  remat: bool = False

  @nn.compact
  def __call__(self, x, image=None):
    """`image (B, H, W, 1)` or None: 1 on the image inside a padded canvas (see DBSN)."""
    f, dt, ci = self.features, self.dtype, self.conv_impl
    x = nn.relu(Conv(f, self.kernel_size, masked=self.blind, dtype=dt, conv_impl=ci)(x))
    size, d, valid = x.shape[1:3], self.dilation, image
    s2b = fast_conv.uses_space_to_batch(ci) and d > 1
    if s2b:
      x, pad_valid = fast_conv.space_to_batch(x, d)
      if image is not None:
        valid = fast_conv.space_to_batch(image, d)[0]
        valid = valid if pad_valid is None else valid * pad_valid
      else:
        valid = pad_valid
      d = 1
    x = nn.relu(Conv(f, dtype=dt, conv_impl=ci)(x))
    x = nn.relu(Conv(f, dtype=dt, conv_impl=ci)(x))
    mdc = nn.remat(MDC) if self.remat else MDC
    for i in range(self.blocks):
      x = mdc(f, d, self.mdc_style, dtype=dt, conv_impl=ci, name=f"MDC_{i}")(x, valid)
    x = Conv(f, dtype=dt, conv_impl=ci)(x)
    return fast_conv.batch_to_space(x, self.dilation, size) if s2b else x


class DBSN(nn.Module):
  """Blind-spot network: `y (B, H, W, C) -> (mu (B, H, W, C), Sigma_mu (B, H, W, C, C))`.

  Attributes:
    channels: C, 1 (gray) or 3 (color).
    features: F, width of every hidden layer (reference 96).
    branches: (kernel, dilation) of each branch's masked conv and MDCs; d > (k-1)/2.
    blocks: MDC modules per branch.
    sigma_form: 'diag' or 'full' covariance for Sigma_mu (C = 1: sigma^2).
    sigma_features: width m of the Sigma_mu head (reference 16 gray, 32 color).
    out_init_scale: the last layers of both heads start at this fraction of He-normal,
      so mu starts near 0.5 (not ~86x too large) and Sigma_mu near zero: one training
      run converges from scratch.
    conv_impl: how convolutions are computed (`fast_conv.IMPLS`; 'auto': the fast CPU
      path on CPU); every choice has the same parameters and outputs.
    remat: recompute MDC activations in the backward pass (less memory, ~1/3 more
      forward compute).
  """
  channels: int = 1
  features: int = 96
  branches: Sequence[Tuple[int, int]] = ((3, 2), (5, 3))
  blocks: Sequence[int] = (8, 8)
  mdc_style: str = "paper"
  sigma_form: str = "diag"
  sigma_features: int = 0  # 0: 16 for gray, 32 for color.
  out_init_scale: float = 0.01
  blind: bool = True
  dtype: Any = jnp.float32
  conv_impl: str = "auto"
  remat: bool = False

  def check(self):
    """Raise ValueError naming the setting if the architecture is not blind."""
    if len(self.branches) != len(self.blocks):
      raise ValueError(f"model.branches has {len(self.branches)} entries but "
                       f"model.blocks has {len(self.blocks)}")
    for k, d in self.branches:
      if k % 2 != 1 or k < 3:
        raise ValueError(f"model.branches: masked kernel size must be odd and >= 3, got {k}")
      if d <= (k - 1) // 2:
        raise ValueError(f"model.branches: dilation {d} must exceed (k-1)/2 = {(k - 1) // 2} "
                         f"for kernel {k}, else the blind spot leaks")
    if self.channels not in (1, 3):
      raise ValueError(f"channels must be 1 or 3, got {self.channels}")

  @nn.compact
  def __call__(self, y, image=None):
    """`image (B, H, W, 1)`, optional: 1 on the image inside a larger canvas. Features
    outside it are zeroed before every k x k conv, exactly as zero 'SAME' padding at
    the image's own size: a padded canvas then gives the exact-size result inside."""
    self.check()
    f, dt, ci = self.features, self.dtype, self.conv_impl
    # Centre the input: a per-pixel constant shift, so the blind spot is unaffected.
    x = nn.relu(Conv(f, dtype=dt, conv_impl=ci, name="head")(y - 0.5))
    if image is not None:
      x = x * image.astype(x.dtype)
    outs = [Branch(f, k, d, n, self.mdc_style, self.blind, dtype=dt,
                   conv_impl=ci, remat=self.remat, name=f"branch{i}")(x, image)
            for i, ((k, d), n) in enumerate(zip(self.branches, self.blocks))]
    mid = Conv(f, dtype=dt, conv_impl=ci, name="merge")(jnp.concatenate(outs, -1))

    out_init = _scaled_he(self.out_init_scale)
    h = nn.relu(Conv(f, dtype=dt, conv_impl=ci, name="mu_1")(mid))
    h = nn.relu(Conv(f, dtype=dt, conv_impl=ci, name="mu_2")(h))
    # +0.5 in fp32: in bf16 mid-grey itself would only keep 8 bits of the estimate.
    mu = Conv(self.channels, dtype=dt, kernel_init=out_init, conv_impl=ci,
              name="mu_out")(h).astype(jnp.float32) + 0.5

    m = self.sigma_features or (16 if self.channels == 1 else 32)
    q = covariance.num_outputs(self.channels, self.sigma_form)
    s = nn.relu(Conv(m, dtype=dt, conv_impl=ci, name="sigma_1")(mid))
    s = nn.relu(Conv(m, dtype=dt, conv_impl=ci, name="sigma_2")(s))
    s = Conv(q, dtype=dt, kernel_init=out_init, conv_impl=ci, name="sigma_out")(s)
    # Reference form: Sigma_mu = L L^T with raw entries of L (gray: out^2).
    sigma_mu = covariance.to_covariance(s.astype(jnp.float32), self.channels,
                                        self.sigma_form, lambda v: v)
    return mu.astype(jnp.float32), sigma_mu

  @property
  def receptive_radius(self) -> int:
    """Largest |offset| any output sees (33 and 50 for the reference branches)."""
    # Either MDC style reaches 2d per module: two stacked 3x3 or one 5x5, dilation d.
    return max((k - 1) // 2 + 2 * n * d
               for (k, d), n in zip(self.branches, self.blocks))
