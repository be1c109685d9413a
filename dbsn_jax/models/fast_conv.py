"""Faster convolutions for CPUs, each exactly equal to the plain `lax.conv` path.

Two rewrites, selected by a model's `conv_impl` attribute (see `IMPLS`):

- Weight gradient by im2col: XLA's CPU convolution computes the filter gradient 4-9x
  slower than the forward pass (measured: a 3x3, 96 -> 96 conv on 8 x 96 x 96 takes
  37 ms forward and input gradient, 160-175 ms filter gradient). `conv2d_im2col_grad`
  keeps XLA's forward and input gradient but computes the filter gradient as one
  matmul, image patches `(P, k^2 Cin)` transposed times output gradient `(P, Cout)`.
- Space-to-batch: a stack of convolutions that all have dilation d (D-BSN's branches
  after the masked conv, SPEC section 2) equals undilated convolutions on the d x d
  pixel-unshuffled sub-images. `space_to_batch` zero-pads H and W to multiples of d and
  returns a validity mask; multiplying every k x k conv's input by it keeps the padded
  pixels at zero, as the plain conv's zero padding has them, so results are identical
  for any size.

Both only reorder exact arithmetic: results agree with the plain path to float
rounding (tests/models/test_fast_conv.py).
"""
import functools
from typing import Optional, Tuple

import jax
import jax.numpy as jnp
from jax import lax

# 'plain': lax.conv everywhere (XLA's own gradients); 's2b': D-BSN's dilated branches
# by space-to-batch; 'fast': the im2col filter gradient where it pays (`im2col_pays`);
# 'auto': 'fast' on CPU, 'plain' on GPUs and TPUs (their native gradients are fast).
# Space-to-batch is not part of 'fast': XLA's CPU convolutions (YNNPACK) run dilated
# kernels at the undilated speed, and the sub-images add padding, masks and transposes
# (measured slower at the CPU-budget size, see README "Speed").
IMPLS = ("plain", "s2b", "fast", "auto")


def resolve(impl: str) -> str:
  """The concrete implementation `impl` stands for on the default backend."""
  if impl not in IMPLS:
    raise ValueError(f"conv_impl must be one of {IMPLS}, got {impl!r}")
  if impl == "auto":
    return "fast" if jax.default_backend() == "cpu" else "plain"
  return impl


def uses_space_to_batch(impl: str) -> bool:
  return resolve(impl) == "s2b"


def uses_im2col_grad(impl: str) -> bool:
  return resolve(impl) == "fast"


def conv2d_plain(x: jnp.ndarray, kernel: jnp.ndarray, dilation: int = 1) -> jnp.ndarray:
  """Stride-1 'same' zero-padded conv of `(B, H, W, Cin)` by `(k, k, Cin, Cout)`."""
  k = kernel.shape[0]
  pad = (k - 1) // 2 * dilation
  return lax.conv_general_dilated(
      x, kernel, window_strides=(1, 1), padding=[(pad, pad), (pad, pad)],
      rhs_dilation=(dilation, dilation), dimension_numbers=("NHWC", "HWIO", "NHWC"))


def im2col(x: jnp.ndarray, k: int, dilation: int = 1) -> jnp.ndarray:
  """`(B, H, W, C)` -> `(B H W, k^2 C)`: row p holds the zero-padded k x k (dilated)
  window around pixel p, taps in HWI order (so it matches an HWIO kernel's rows)."""
  b, h, w, c = x.shape
  pad = (k - 1) // 2 * dilation
  xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  taps = [xp[:, i * dilation:i * dilation + h, j * dilation:j * dilation + w]
          for i in range(k) for j in range(k)]
  return jnp.concatenate(taps, axis=-1).reshape(b * h * w, k * k * c)


# Bytes of image patches per step of the weight gradient: small enough to stay in
# cache and to be served from the allocator's free lists. (Buffers over ~32 MB are
# fresh mmaps on every call, and first-touch page faults then cost more than the
# matmul: measured 118k faults, 650 ms for one unchunked 96-channel gradient.)
CHUNK_BYTES = 16 * 2**20


def weight_grad_im2col(x: jnp.ndarray, g: jnp.ndarray, k: int, dilation: int,
                       dtype) -> jnp.ndarray:
  """d(sum g * conv(x, W)) / dW as im2col matmuls: `(k, k, Cin, Cout)` in `dtype`.

  The batch is processed in a sequential loop of chunks whose patches fit
  `CHUNK_BYTES`, accumulating `patches^T @ g` in fp32.
  """
  b, h, w, cin = x.shape
  cout = g.shape[-1]
  per_image = h * w * k * k * cin * x.dtype.itemsize
  n = next(n for n in range(1, b + 1) if b % n == 0 and (b // n) * per_image <= CHUNK_BYTES
           or n == b)

  def chunk(xc, gc):
    return lax.dot_general(im2col(xc, k, dilation), gc.reshape(-1, cout),
                           (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)

  if n == 1:
    dw = chunk(x, g)
  else:
    xs, gs = x.reshape(n, b // n, h, w, cin), g.reshape(n, b // n, h, w, cout)
    dw, _ = lax.scan(lambda acc, xg: (acc + chunk(*xg), None),
                     jnp.zeros((k * k * cin, cout), jnp.float32), (xs, gs))
  return dw.reshape(k, k, cin, cout).astype(dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv2d_im2col_grad(x: jnp.ndarray, kernel: jnp.ndarray, dilation: int = 1) -> jnp.ndarray:
  """`conv2d_plain` whose filter gradient is an im2col matmul (CPU-efficient)."""
  return conv2d_plain(x, kernel, dilation)


def _fwd(x, kernel, dilation):
  return conv2d_plain(x, kernel, dilation), (x, kernel)


def _bwd(dilation, res, g):
  x, kernel = res
  # Input gradient: XLA's transposed convolution, as fast as the forward pass.
  _, vjp_x = jax.vjp(lambda v: conv2d_plain(v, kernel, dilation), x)
  (dx,) = vjp_x(g)
  return dx, weight_grad_im2col(x, g, kernel.shape[0], dilation, kernel.dtype)


conv2d_im2col_grad.defvjp(_fwd, _bwd)


def dense(x: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
  """A 1x1 conv, `(B, H, W, Cin) @ (Cin, Cout)`. (Kept 4-D: XLA CPU then fuses the
  following bias and ReLU into the matmul; a 2-D reshape in between costs an extra
  pass over the activations.)"""
  return jnp.einsum("bhwc,cd->bhwd", x, kernel)


# The im2col filter gradient pays only for wide layers on many pixels. Measured (CPU
# seconds, 3x3, dilation 1-3, 2 cores): 96 -> 96 channels on 8 x 96 x 96: XLA 255-280 ms,
# im2col 117-120 ms; on 8 x 64 x 64: 59-73 vs 56-61 ms; 64 -> 64 or narrower: XLA is
# 1.5-2x faster (its gradient is efficient there and im2col's copies dominate).
IM2COL_MIN_CHANNELS = 96 * 96   # Cin x Cout.
IM2COL_MIN_PIXELS = 65_536      # B x H x W.


def im2col_pays(x_shape, kernel_shape) -> bool:
  """Whether the im2col filter gradient beats XLA's for this layer (measured rule)."""
  b, h, w, _ = x_shape
  return (kernel_shape[2] * kernel_shape[3] >= IM2COL_MIN_CHANNELS
          and b * h * w >= IM2COL_MIN_PIXELS)


def conv2d(x: jnp.ndarray, kernel: jnp.ndarray, dilation: int = 1,
           impl: str = "auto") -> jnp.ndarray:
  """Stride-1 'same' conv by `(k, k, Cin, Cout)` with the implementation `impl`."""
  if kernel.shape[0] == 1:  # A 1x1 conv is a matmul over channels (every impl).
    return dense(x, kernel[0, 0])
  if uses_im2col_grad(impl) and im2col_pays(x.shape, kernel.shape):
    return conv2d_im2col_grad(x, kernel, dilation)
  return conv2d_plain(x, kernel, dilation)


def space_to_batch(x: jnp.ndarray, d: int) -> Tuple[jnp.ndarray, Optional[jnp.ndarray]]:
  """`(B, H, W, C)` -> (`(d^2 B, ceil(H/d), ceil(W/d), C)` sub-images, validity mask).

  Sub-image (a, b) of image n (index (a d + b) B + n) holds pixels (a + d i, b + d j).
  H and W are zero-padded at the bottom/right to multiples of d; the mask (same leading
  shape, one channel, 1 on real pixels) is None when nothing was padded.
  """
  n, h, w, c = x.shape
  hp, wp = -(-h // d) * d, -(-w // d) * d
  mask = None
  if (hp, wp) != (h, w):
    x = jnp.pad(x, ((0, 0), (0, hp - h), (0, wp - w), (0, 0)))
    ones = jnp.pad(jnp.ones((1, h, w, 1), x.dtype), ((0, 0), (0, hp - h), (0, wp - w), (0, 0)))
    mask = jnp.repeat(_unshuffle(ones, d), n, axis=0)
  return _unshuffle(x, d), mask


def _unshuffle(x, d):
  n, hp, wp, c = x.shape
  x = x.reshape(n, hp // d, d, wp // d, d, c).transpose(2, 4, 0, 1, 3, 5)
  return x.reshape(d * d * n, hp // d, wp // d, c)


def batch_to_space(x: jnp.ndarray, d: int, size: Tuple[int, int]) -> jnp.ndarray:
  """Inverse of `space_to_batch`: sub-images back to `(B, H, W, C)`, `size = (H, W)`."""
  m, hs, ws, c = x.shape
  n = m // (d * d)
  x = x.reshape(d, d, n, hs, ws, c).transpose(2, 3, 0, 4, 1, 5)
  return x.reshape(n, hs * d, ws * d, c)[:, :size[0], :size[1]]
