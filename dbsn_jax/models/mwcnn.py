"""MWCNN (multi-level wavelet CNN), the stage-2 denoiser of docs/design.md section 7.

Three levels of Haar DWT; at each, a 3x3 conv to the level's width then `convs` more
3x3 convs; the decoder mirrors it, adding each level's DWT output before the IWT.
The convs that produce those band corrections are linear and zero-initialised, so the
network starts as the identity IWT(DWT(y)) = y: with He-normal init there the output
starts far from y and a small MWCNN barely learns (measured: +0.5 dB vs +6 dB after
400 steps). Inputs of any size: reflect-padded to a multiple of 8, cropped back.
"""
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from dbsn_jax.models.layers import Conv
from dbsn_jax.models.wavelets import dwt, iwt


def pad_to_multiple(x, m: int):
  """Reflect-pad `(B, H, W, C)` at the bottom/right to multiples of m."""
  h, w = x.shape[1:3]
  ph, pw = (-h) % m, (-w) % m
  if ph == 0 and pw == 0:
    return x
  mode = "reflect" if min(h, w) > max(ph, pw) else "symmetric"
  return jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode=mode)


class MWCNN(nn.Module):
  """`(B, H, W, C) -> (B, H, W, C)`; reference widths (160, 256, 256), 3 convs/level."""
  channels: int = 1
  widths: Sequence[int] = (160, 256, 256)
  convs: int = 3
  dtype: Any = jnp.float32
  # dbsn_jax.models.fast_conv.IMPLS; same parameters for all. 'plain' by default: on
  # these undilated convs XLA's own gradients beat 'fast' in a whole CPU train step
  # (tools/benchmark.py: 'fast' 0.75-0.87x), and stage 2 has no micro-batch loop.
  conv_impl: str = "plain"

  def _stack(self, x, width, n):
    for _ in range(n):
      x = nn.relu(Conv(width, 3, dtype=self.dtype, conv_impl=self.conv_impl)(x))
    return x

  @nn.compact
  def __call__(self, y):
    h, w = y.shape[1:3]
    x = pad_to_multiple(y.astype(jnp.float32), 2 ** len(self.widths))
    bands, feats = [], x
    for width in self.widths:  # Encoder.
      feats = dwt(feats)
      bands.append(feats)
      feats = nn.relu(Conv(width, 3, dtype=self.dtype, conv_impl=self.conv_impl)(feats))
      feats = self._stack(feats, width, self.convs)
    for level in reversed(range(len(self.widths))):  # Decoder.
      feats = self._stack(feats, self.widths[level], self.convs)
      out_ch = bands[level].shape[-1]
      feats = Conv(out_ch, 3, kernel_init=nn.initializers.zeros, dtype=self.dtype,
                   conv_impl=self.conv_impl)(feats)
      feats = iwt(feats.astype(jnp.float32) + bands[level])
    return feats[:, :h, :w]
