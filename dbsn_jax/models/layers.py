"""Convolutions that keep the blind spot: centrally masked k x k, dilated, and 1x1.

All layers take and return NHWC arrays `(B, H, W, C)` with "same" zero padding.
"""
from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

from dbsn_jax import prng
from dbsn_jax.models import fast_conv

# He-normal (fan-in), as the reference initialises every conv.
he_normal = prng.he_normal()


def centre_mask(kernel_size: int) -> jnp.ndarray:
  """`(k, k)` ones with a zero centre tap."""
  mask = jnp.ones((kernel_size, kernel_size), jnp.float32)
  c = kernel_size // 2
  return mask.at[c, c].set(0.0)


def conv2d(x: jnp.ndarray, kernel: jnp.ndarray, dilation: int = 1,
           impl: str = "plain") -> jnp.ndarray:
  """Stride-1 "same" convolution of `(B, H, W, Cin)` by `(k, k, Cin, Cout)`.

  `impl` (`fast_conv.IMPLS`) picks how it is computed; all agree to float rounding.
  """
  return fast_conv.conv2d(x, kernel, dilation, impl)


class Conv(nn.Module):
  """k x k convolution with dilation d (odd k), bias, optional centre mask.

  With `masked=True` the centre tap is multiplied by zero in every forward pass, so
  the output at p never depends on the input at p (the D-BSN's first layer).
  `conv_impl` selects the computation (`fast_conv.IMPLS`); parameters are the same.
  """
  features: int
  kernel_size: int = 1
  dilation: int = 1
  masked: bool = False
  use_bias: bool = True
  kernel_init: Callable[..., Any] = he_normal
  bias_init: Callable[..., Any] = nn.initializers.zeros
  dtype: Any = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    k = self.kernel_size
    if k % 2 != 1:
      raise ValueError(f"Conv kernel_size must be odd, got {k}")
    kernel = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features))
    if self.masked:
      kernel = kernel * centre_mask(k).astype(kernel.dtype)[:, :, None, None]
    y = conv2d(x.astype(self.dtype), kernel.astype(self.dtype), self.dilation,
               self.conv_impl)
    if self.use_bias:
      y = y + self.param("bias", self.bias_init, (self.features,)).astype(self.dtype)
    return y
