"""MWCNN (multi-level wavelet CNN), the stage-2 denoiser of docs/design.md section 7.

One level of Haar DWT per entry of `widths` (three in the paper); at each, a 3x3 conv to
the level's width then `convs` more 3x3 convs; the decoder mirrors it, adding each
level's DWT output before the IWT.
The convs that produce those band corrections are linear and zero-initialised, so the
network starts as the identity IWT(DWT(y)) = y: with He-normal init there the output
starts far from y and a small MWCNN barely learns (measured: +0.5 dB vs +6 dB after
400 steps). Inputs of any size: mirror-padded to a multiple of 2^levels, cropped back.
With `level_input` the network is told the noise level, as FFDNet is: a map of the
noise std beside the input of each encoder level's first conv (measured: a small
blind-range model otherwise spends its capacity telling the level; docs/evaluation.md).
`activation='leaky_relu'` keeps units that Adam's early steps push below zero trainable
(half the coarse levels' ReLU channels end dead otherwise; docs/evaluation.md).
"""
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from dbsn_jax.models.layers import Conv
from dbsn_jax.models.wavelets import dwt, iwt

ACTIVATIONS = {"relu": nn.relu, "leaky_relu": nn.leaky_relu}


def pad_to_multiple(x, m: int, mode: str = "symmetric"):
  """Pad `(B, H, W, C)` at the bottom/right to multiples of m (mirrored, edge included,
  as `inference.Denoiser` pads its canvases: the same borders either way)."""
  h, w = x.shape[1:3]
  ph, pw = (-h) % m, (-w) % m
  if ph == 0 and pw == 0:
    return x
  return jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode=mode)


def block_masks(mask, levels: int):
  """`mask (B, H, W, 1)` -> its `levels + 1` scales: 1 on every 2^levels block it
  touches (the exact size's canvas is the image padded to such blocks), then each
  level's 2x2-block maximum."""
  b, h, w, _ = mask.shape
  s = 2**levels
  coarse = mask.reshape(b, h // s, s, w // s, s, 1).max(axis=(2, 4))
  out = [jnp.repeat(jnp.repeat(coarse, s, 1), s, 2)]
  for _ in range(levels):
    m = out[-1]
    out.append(m.reshape(b, m.shape[1] // 2, 2, m.shape[2] // 2, 2, 1).max(axis=(2, 4)))
  return out


class MWCNN(nn.Module):
  """`(B, H, W, C) -> (B, H, W, C)`; reference widths (160, 256, 256), 3 convs/level.

  `mask` `(B, H, W, 1)`, 1 on the image inside a larger canvas: features outside the
  8x8 blocks it touches are zeroed after every layer, as zero padding at the image's
  own (padded) size would see them, so a canvas gives the exact-size result there.
  """
  channels: int = 1
  widths: Sequence[int] = (160, 256, 256)
  convs: int = 3
  dtype: Any = jnp.float32
  # dbsn_jax.models.fast_conv.IMPLS; same parameters for all. 'plain' by default: on
  # these undilated convs XLA's own gradients beat 'fast' in a whole CPU train step
  # (tools/benchmark.py: 'fast' 0.75-0.87x), and stage 2 has no micro-batch loop.
  conv_impl: str = "plain"
  # Take a noise-level map `level (B, H, W, 1)` (the noise std) as a second input.
  level_input: bool = False
  # A key of ACTIVATIONS: after every conv but the band-correction outputs.
  activation: str = "relu"

  def _act(self, x):
    if self.activation not in ACTIVATIONS:
      raise ValueError(f"MWCNN activation must be one of {sorted(ACTIVATIONS)}, "
                       f"got {self.activation!r}")
    return ACTIVATIONS[self.activation](x)

  def _stack(self, x, width, n, keep):
    for _ in range(n):
      x = keep(self._act(Conv(width, 3, dtype=self.dtype, conv_impl=self.conv_impl)(x)))
    return x

  @nn.compact
  def __call__(self, y, mask=None, level=None):
    h, w = y.shape[1:3]
    levels = len(self.widths)
    if self.level_input and level is None:
      raise ValueError("this MWCNN takes a noise-level map (level_input=True); pass `level`")
    x = pad_to_multiple(y.astype(jnp.float32), 2**levels)
    lmap = None if level is None else pad_to_multiple(
        jnp.broadcast_to(level, y.shape[:3] + (1,)).astype(jnp.float32), 2**levels)
    if mask is None:
      keeps = [lambda t: t] * (levels + 1)
    else:
      masks = block_masks(pad_to_multiple(mask.astype(jnp.float32), 2**levels, "constant"),
                          levels)
      keeps = [lambda t, m=m: t * m.astype(t.dtype) for m in masks]
      x = keeps[0](x)
    bands, feats = [], x
    for level, width in enumerate(self.widths):  # Encoder.
      feats = dwt(feats)
      bands.append(feats)
      keep = keeps[level + 1]
      inputs = feats
      if self.level_input:  # The map at this scale (2x2 means), zero outside the image.
        n, hh, ww, _ = lmap.shape
        lmap = lmap.reshape(n, hh // 2, 2, ww // 2, 2, 1).mean(axis=(2, 4))
        inputs = jnp.concatenate([feats, keep(lmap).astype(feats.dtype)], -1)
      feats = keep(self._act(Conv(width, 3, dtype=self.dtype, conv_impl=self.conv_impl)(inputs)))
      feats = self._stack(feats, width, self.convs, keep)
    for level in reversed(range(levels)):  # Decoder.
      keep = keeps[level + 1]
      feats = self._stack(feats, self.widths[level], self.convs, keep)
      out_ch = bands[level].shape[-1]
      feats = Conv(out_ch, 3, kernel_init=nn.initializers.zeros, dtype=self.dtype,
                   conv_impl=self.conv_impl)(feats)
      feats = iwt(keep(feats.astype(jnp.float32)) + bands[level])
    return feats[:, :h, :w]
