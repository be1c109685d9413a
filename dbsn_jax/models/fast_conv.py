"""Faster convolutions for CPUs, each exactly equal to the plain `lax.conv` path.

Two rewrites, selected by a model's `conv_impl` attribute (see `IMPLS`):

- Gradients (`conv2d_fast`): XLA's CPU filter gradient runs well below its forward
  pass, and inside a loop body (micro-batching, `dbsn_jax.train.microbatch`) both of
  its backward convolutions fall back to a much slower generic loop. `conv2d_fast`
  keeps XLA's forward, takes the input gradient as a forward convolution of the
  flipped kernel, and the filter gradient as one `(Cout, rows) @ (rows, Cin)` product
  per kernel tap on contiguous slices of the flattened image (`weight_grad_taps`) or,
  for thin layers, as an explicit NHWC convolution. Measurements: docs/speed.md.
- Space-to-batch: a stack of convolutions that all have dilation d (D-BSN's
  branches after the masked conv, docs/design.md section 2) equals undilated
  convolutions on the d x d pixel-unshuffled sub-images. `space_to_batch` zero-pads H
  and W to multiples of d and returns a validity mask; multiplying every k x k conv's
  input by it keeps the padded pixels at zero, as the plain conv's zero padding has
  them, so results are identical for any size.

Both only reorder exact arithmetic: results agree with the plain path to float
rounding (tests/models/test_fast_conv.py).
"""
import functools
from typing import Optional, Tuple

import jax
import jax.numpy as jnp
from jax import lax

# 'plain': lax.conv everywhere (XLA's own gradients); 's2b': D-BSN's dilated branches
# by space-to-batch; 'fast': `conv2d_fast`'s gradients for every k x k conv;
# 'auto': 'fast' on CPU, 'plain' on GPUs and TPUs (their native gradients are fast).
# Space-to-batch is not part of 'fast': XLA's CPU convolutions (YNNPACK) run dilated
# kernels at the undilated speed, and the sub-images add padding, masks and transposes
# (measured slower at the CPU-budget size: docs/speed.md).
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


def uses_fast_grads(impl: str) -> bool:
  return resolve(impl) == "fast"


def conv2d_plain(x: jnp.ndarray, kernel: jnp.ndarray, dilation: int = 1) -> jnp.ndarray:
  """Stride-1 'same' zero-padded conv of `(B, H, W, Cin)` by `(k, k, Cin, Cout)`."""
  k = kernel.shape[0]
  pad = (k - 1) // 2 * dilation
  return lax.conv_general_dilated(
      x, kernel, window_strides=(1, 1), padding=[(pad, pad), (pad, pad)],
      rhs_dilation=(dilation, dilation), dimension_numbers=("NHWC", "HWIO", "NHWC"))


# Rows of the flattened image per step of the filter gradient's loop, for inputs over
# `WHOLE_ROWS` rows (a batch of 8 reference patches has ~80k): each step's operands
# stay in cache. Measured on 96 -> 96 channel gradients: 1,024-2,048 rows run at ~0.55
# of the matmul peak, 256 rows lose ~15 % to per-call overhead, 16k-row steps ~20 % to
# cache misses. Smaller inputs (one patch of a micro-batched step: ~10k rows) take one
# loop-free pass: no dynamic slicing, and XLA can overlap the products with other work
# (measured: the reference step with micro-batches of 1 runs 5-7 % faster so).
CHUNK_ROWS = 2048
WHOLE_ROWS = 16_384


def weight_grad_taps(x: jnp.ndarray, g: jnp.ndarray, k: int, dilation: int,
                     dtype) -> jnp.ndarray:
  """d(sum g * conv(x, W)) / dW as one small matmul per tap: `(k, k, Cin, Cout)`.

  Why no image patches are needed: put the zero-padded input on a flat grid of
  `(B, Hp, Wp)` rows and the output gradient on the same grid (zeros outside the
  `H x W` corner of each image). Then output row r pairs with input row r + o for the
  tap at (i, j), o = (i Wp + j) d, so tap (i, j)'s gradient is `X[o:o + M]^T @ G[:M]`:
  a contiguous slice, no gathered copy. Rows past an image's corner meet zero gradient,
  so the wrap-around into the next image adds nothing. Large inputs loop over chunks
  of `CHUNK_ROWS` rows, keeping each product's operands in cache; sums in fp32.
  """
  b, h, w, cin = x.shape
  cout = g.shape[-1]
  p = (k - 1) // 2 * dilation
  hp, wp = h + 2 * p, w + 2 * p
  halo = 2 * p * wp + 2 * p  # The largest tap offset.
  m = b * hp * wp - halo     # Grid rows that can hold an output pixel.
  rows = m if m <= WHOLE_ROWS else CHUNK_ROWS
  steps = -(-m // rows)
  xf = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0))).reshape(b * hp * wp, cin)
  xf = jnp.pad(xf, ((0, steps * rows + halo - xf.shape[0]), (0, 0)))
  gf = jnp.pad(g, ((0, 0), (0, 2 * p), (0, 2 * p), (0, 0))).reshape(b * hp * wp, cout)[:m]
  gf = jnp.pad(gf, ((0, steps * rows - m), (0, 0))).reshape(steps, rows, cout)
  offsets = [(i * wp + j) * dilation for i in range(k) for j in range(k)]

  def step(acc, t):
    i, gc = t
    xc = lax.dynamic_slice_in_dim(xf, i * rows, rows + halo)
    # (Cout, Cin) products: measured a few % faster than (Cin, Cout) here.
    taps = [lax.dot_general(gc, xc[o:o + rows], (((0,), (0,)), ((), ())),
                            preferred_element_type=jnp.float32) for o in offsets]
    return acc + jnp.stack(taps), None

  if steps == 1:
    dw = step(0.0, (0, gf[0]))[0]
  else:
    dw, _ = lax.scan(step, jnp.zeros((k * k, cout, cin), jnp.float32),
                     (jnp.arange(steps), gf))
  return dw.transpose(0, 2, 1).reshape(k, k, cin, cout).astype(dtype)


def weight_grad_conv(x: jnp.ndarray, g: jnp.ndarray, k: int, dilation: int,
                     dtype) -> jnp.ndarray:
  """The filter gradient as one explicit NHWC convolution: `(k, k, Cin, Cout)`.

  The padded input with channels as batch `(Cin, Hp, Wp, B)` convolved by the output
  gradient as a `(H, W, B, Cout)` kernel, window stride = dilation. The same sum XLA
  derives itself, but in the layouts XLA's CPU convolution library takes even inside
  a loop body, where XLA's own form falls back to a ~25x slower generic loop.
  """
  p = (k - 1) // 2 * dilation
  xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
  dw = lax.conv_general_dilated(
      xp.transpose(3, 1, 2, 0), g.transpose(1, 2, 0, 3), (dilation, dilation), "VALID",
      dimension_numbers=("NHWC", "HWIO", "NHWC"), preferred_element_type=jnp.float32)
  return dw.transpose(1, 2, 0, 3).astype(dtype)


def input_grad(g: jnp.ndarray, kernel: jnp.ndarray, dilation: int) -> jnp.ndarray:
  """d(sum g * conv(x, W)) / dx: the 'same' conv of g by the flipped, transposed kernel
  (stride 1, odd k), a forward convolution as fast as the forward pass, in loops too."""
  return conv2d_plain(g, jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2), dilation)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv2d_fast(x: jnp.ndarray, kernel: jnp.ndarray, dilation: int = 1) -> jnp.ndarray:
  """`conv2d_plain` with CPU-efficient gradients: the input gradient as a forward
  conv, the filter gradient tap by tap where it pays (`taps_pay`), else as an
  explicit convolution (`weight_grad_conv`)."""
  return conv2d_plain(x, kernel, dilation)


def _fwd(x, kernel, dilation):
  return conv2d_plain(x, kernel, dilation), (x, kernel)


def _bwd(dilation, res, g):
  x, kernel = res
  k = kernel.shape[0]
  weight_grad = weight_grad_taps if taps_pay(kernel.shape) else weight_grad_conv
  return (input_grad(g, kernel, dilation).astype(x.dtype),
          weight_grad(x, g, k, dilation, kernel.dtype))


conv2d_fast.defvjp(_fwd, _bwd)


def dense(x: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
  """A 1x1 conv, `(B, H, W, Cin) @ (Cin, Cout)`. (Kept 4-D: XLA CPU then fuses the
  following bias and ReLU into the matmul; a 2-D reshape in between costs an extra
  pass over the activations.)"""
  return jnp.einsum("bhwc,cd->bhwd", x, kernel)


# Where the tap-by-tap filter gradient beats the convolution form (measured, fraction
# of the matmul peak, 3x3, dilation 1-3, 2 cores; tools/benchmark.py re-measures whole
# steps): 96 -> 96 and 160 -> 160 on 8 x 96^2: 0.55-0.68 vs XLA's 0.17-0.30; on
# 1 x 96^2: 0.52-0.55 vs 0.33-0.36; 48 -> 48: 0.37 vs 0.20 (8 x 64^2), 0.31 vs 0.15
# (1 x 64^2); 64 -> 64 about equal (0.25 vs 0.27). With 1 or 3 input channels (the
# first layers) the taps' products are too thin: 2x slower.
TAPS_MIN_CHANNELS = 32  # Both Cin and Cout.


def taps_pay(kernel_shape) -> bool:
  """Whether the tap-by-tap filter gradient beats the convolution form (measured)."""
  return min(kernel_shape[2], kernel_shape[3]) >= TAPS_MIN_CHANNELS


def conv2d(x: jnp.ndarray, kernel: jnp.ndarray, dilation: int = 1,
           impl: str = "auto") -> jnp.ndarray:
  """Stride-1 'same' conv by `(k, k, Cin, Cout)` with the implementation `impl`."""
  if kernel.shape[0] == 1:  # A 1x1 conv is a matmul over channels (every impl).
    return dense(x, kernel[0, 0])
  if uses_fast_grads(impl):
    return conv2d_fast(x, kernel, dilation)
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
