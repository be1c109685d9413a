"""DnCNN: 17 3x3 conv layers, BatchNorm in the middle ones, residual output."""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from dbsn_jax.models.layers import Conv


class DnCNN(nn.Module):
  """`(B, H, W, C) -> (B, H, W, C)`: y minus the predicted noise.

  BatchNorm statistics live in the 'batch_stats' collection (carried in TrainState).
  `mask` `(B, H, W, 1)`, 1 on the image inside a larger canvas: features outside it are
  zeroed after every layer, as zero padding at the image's own size would see them, so
  a padded canvas gives the exact-size result there (docs/design.md section 7).
  """
  channels: int = 1
  features: int = 64
  depth: int = 17
  dtype: Any = jnp.float32
  # dbsn_jax.models.fast_conv.IMPLS; same parameters for all. 'plain' by default: on
  # these undilated convs XLA's own gradients beat 'fast' in a whole CPU train step
  # (tools/benchmark.py: 'fast' 0.75-0.87x), and stage 2 has no micro-batch loop.
  conv_impl: str = "plain"
  # Take a noise-level map `level (B, H, W, 1)` (the noise std) beside the input, as FFDNet.
  level_input: bool = False

  @nn.compact
  def __call__(self, y, train: bool = False, mask=None, level=None):
    ci = self.conv_impl
    keep = (lambda t: t) if mask is None else (lambda t: t * mask.astype(t.dtype))
    inputs = y
    if self.level_input:
      if level is None:
        raise ValueError("this DnCNN takes a noise-level map (level_input=True); pass `level`")
      inputs = jnp.concatenate([y, jnp.broadcast_to(level, y.shape[:3] + (1,)).astype(y.dtype)],
                               -1)
    x = keep(nn.relu(Conv(self.features, 3, dtype=self.dtype, conv_impl=ci)(keep(inputs))))
    for _ in range(self.depth - 2):
      x = Conv(self.features, 3, use_bias=False, dtype=self.dtype, conv_impl=ci)(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                       dtype=jnp.float32)(x)
      x = keep(nn.relu(x))
    noise = Conv(self.channels, 3, use_bias=False, dtype=self.dtype, conv_impl=ci)(x)
    return y - noise.astype(jnp.float32)
