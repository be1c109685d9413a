"""Real camera photos (docs/design.md section 8): pixel-shuffle down-sampling, Bayer groups,
guided filter.

Demosaicking spreads each sensor pixel's noise over its neighbours, so a blind-spot
network that sees the 8 neighbours of a pixel also sees most of its noise. Taking every
f-th pixel (f = 4) gives f^2 sub-images whose neighbouring pixels are f apart on the
sensor, where the noise is nearly independent again. A sub-image at offset (a, b) holds
the pixels of one Bayer phase (a mod 2, b mod 2) when f is even, so the 16 sub-images
fall into 4 groups that share a noise model. The reassembled result shows faint
f-periodic seams; a guided filter (He et al., radius 1, eps 0.01) smooths them.
"""
import dataclasses

import jax.numpy as jnp
import numpy as np

NUM_BAYER_GROUPS = 4


@dataclasses.dataclass(frozen=True)
class Settings:
  """The `realworld` section of a stage-1 config (defaults: plain synthetic-noise path)."""
  downsample: int = 1          # Pixel-shuffle factor f (1: off).
  bayer_groups: bool = False   # One noise model per Bayer phase (needs even f).
  guided_filter: bool = False  # Smooth the reassembled estimate.
  gf_radius: int = 1
  gf_eps: float = 0.01

  @property
  def num_groups(self) -> int:
    return NUM_BAYER_GROUPS if self.bayer_groups and self.downsample > 1 else 1


def settings(config) -> Settings:
  """Settings from a stage-1 config; configs (and checkpoints) without the section get
  the defaults, so older runs load unchanged. Bad values are refused by name."""
  rw = config.get("realworld", None)
  if rw is None:
    return Settings()
  s = Settings(int(rw.downsample), bool(rw.bayer_groups), bool(rw.guided_filter),
               int(rw.gf_radius), float(rw.gf_eps))
  if not 1 <= s.downsample <= 16:
    raise ValueError(f"realworld.downsample must be in 1..16, got {s.downsample}")
  if s.bayer_groups and (s.downsample < 2 or s.downsample % 2):
    raise ValueError("realworld.bayer_groups needs an even realworld.downsample (a sub-image "
                     f"holds one Bayer phase only then), got downsample={s.downsample}")
  if s.gf_radius < 0 or s.gf_eps <= 0:
    raise ValueError(f"realworld.gf_radius must be >= 0 and realworld.gf_eps > 0, got "
                     f"{s.gf_radius} and {s.gf_eps}")
  return s


# -- pixel-shuffle down-sampling ------------------------------------------------------
def unshuffle(x, f: int):
  """`(B, H, W, ...)` with H, W multiples of f -> `(B * f^2, H/f, W/f, ...)`.

  Sub-image `b * f^2 + a * f + c` is `x[b, a::f, c::f]` (offset (a, c))."""
  b, h, w, *rest = x.shape
  if h % f or w % f:
    raise ValueError(f"unshuffle needs sides divisible by {f}, got {h}x{w}")
  x = x.reshape(b, h // f, f, w // f, f, *rest)
  x = jnp.moveaxis(x, (2, 4), (1, 2))  # (B, f, f, H/f, W/f, ...)
  return x.reshape(b * f * f, h // f, w // f, *rest)


def shuffle(s, f: int):
  """The exact inverse of `unshuffle`: `(B * f^2, h, w, ...)` -> `(B, h f, w f, ...)`."""
  n, h, w, *rest = s.shape
  s = s.reshape(n // (f * f), f, f, h, w, *rest)
  s = jnp.moveaxis(s, (1, 2), (2, 4))  # (B, h, f, w, f, ...)
  return s.reshape(n // (f * f), h * f, w * f, *rest)


def padded_size(n: int, f: int) -> int:
  return -(-n // f) * f


def downsample(x, f: int):
  """`x (B, H, W, ...)` (images, or per-pixel covariances `(B, H, W, C, C)`) ->
  `(B * f^2, ceil(H/f), ceil(W/f), ...)`; sides that do not divide are reflect-padded at
  the bottom / right (`upsample` crops them back)."""
  _, h, w, *rest = x.shape
  ph, pw = padded_size(h, f) - h, padded_size(w, f) - w
  if ph or pw:
    if ph >= h or pw >= w:
      raise ValueError(f"image {h}x{w} is too small to down-sample by {f}")
    x = jnp.pad(x, ((0, 0), (0, ph), (0, pw)) + ((0, 0),) * len(rest), mode="reflect")
  return unshuffle(x, f)


def upsample(s, f: int, size):
  """Reassemble `downsample`'s sub-images (any trailing dims) and crop to `size = (H, W)`."""
  return shuffle(s, f)[:, :size[0], :size[1]]


def bayer_groups(f: int) -> np.ndarray:
  """Group (0..3) of each of the f^2 sub-image offsets (a, c): 2 (a mod 2) + (c mod 2)."""
  a, c = np.divmod(np.arange(f * f), f)
  return (2 * (a % 2) + (c % 2)).astype(np.int32)


def model_ids(image_ids, s: Settings, per_image: bool):
  """Noise-model id of every sub-image of images `image_ids (B,)` -> `(B * f^2,)`.

  Groups only: the Bayer group; per image and group: image * groups + group; with
  neither: the image id (per image) or 0."""
  f, g = s.downsample, s.num_groups
  image_ids = jnp.asarray(image_ids, jnp.int32)
  groups = jnp.asarray(bayer_groups(f) if g > 1 else np.zeros(f * f, np.int32))
  img = jnp.repeat(image_ids, f * f) if per_image else jnp.zeros(image_ids.shape[0] * f * f,
                                                                 jnp.int32)
  return img * g + jnp.tile(groups, image_ids.shape[0])


def num_noise_models(num_images: int, s: Settings, per_image: bool) -> int:
  """Size of CNN_est's parameter table (0: one shared model)."""
  if s.num_groups == 1:
    return num_images if per_image else 0
  return s.num_groups * (num_images if per_image else 1)


def models_per_group(num_models: int, s: Settings) -> int:
  """How many noise models each sub-image chooses among (> 1: per-photo models)."""
  return num_models // s.num_groups


def split_images(images, s: Settings, per_image: bool):
  """Training images `[(H, W, C)]` -> (sub-images, their noise-model ids)."""
  subs, ids = [], []
  for i, im in enumerate(images):
    sub = np.asarray(downsample(jnp.asarray(im)[None], s.downsample))
    subs.extend(list(sub))
    ids.extend(np.asarray(model_ids(np.array([i]), s, per_image)).tolist())
  return subs, ids


# -- guided filter ----------------------------------------------------------------------
def _box_mean(x, r: int):
  """Mean over the (2r+1)^2 window clipped at the borders, `(B, H, W, C)`, by cumulative
  sums along each axis (cost independent of r)."""
  for axis in (1, 2):
    n = x.shape[axis]
    c = jnp.cumsum(x, axis=axis)
    c = jnp.concatenate([jnp.zeros_like(jnp.take(c, jnp.arange(1), axis=axis)), c], axis)
    i = np.arange(n)
    hi, lo = np.minimum(i + r + 1, n), np.maximum(i - r, 0)
    shape = [1] * x.ndim
    shape[axis] = n
    x = (jnp.take(c, hi, axis=axis) - jnp.take(c, lo, axis=axis)) / (hi - lo).reshape(shape)
  return x


def guided_filter(p, guide, radius: int = 1, eps: float = 0.01):
  """He et al.'s guided filter of `p (B, H, W, C)` by `guide (B, H, W, 1 or C)`.

  Per window: p ~ a * guide + b (least squares, ridge eps on a); the output averages
  the windows' a and b. A one-channel guide steers every channel; a C-channel guide
  steers channel c by its channel c. Image and guide are centred first (the filter is
  translation-invariant), which keeps the float32 cumulative sums accurate.
  """
  p = jnp.asarray(p, jnp.float32)
  guide = jnp.asarray(guide, jnp.float32)
  p_mean = jnp.mean(p, axis=(1, 2), keepdims=True)
  g_mean = jnp.mean(guide, axis=(1, 2), keepdims=True)
  p0, g0 = p - p_mean, guide - g_mean
  box = lambda v: _box_mean(v, radius)  # noqa: E731
  mg, mp = box(g0), box(p0)
  cov = box(g0 * p0) - mg * mp
  var = box(g0 * g0) - mg * mg
  a = cov / (var + eps)
  b = mp - a * mg
  return box(a) * g0 + box(b) + p_mean
