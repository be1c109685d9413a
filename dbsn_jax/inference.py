"""Denoise images with a trained model: `load_denoiser(path)`, `denoise(image, model=...)`.

A `Denoiser` is a pure function plus parameters. Its call accepts `(H, W)`,
`(H, W, C)` or `(N, H, W, C)` NumPy or JAX arrays of uint8, uint16 or float and returns
the same shape and dtype, in the same range (float output clipped to [0, 1]).

Shapes: images are padded to size buckets so a folder of differently sized photos
compiles a handful of times, not once per image. Large images are processed in
overlapping tiles (overlap >= the receptive field), which equals the untiled result.
The padding, masks, crops and dtype conversions around the compiled networks are
NumPy: done in JAX outside a program, each would compile once per image size.
"""
import dataclasses
import functools
import json
import os
import warnings
import zipfile
from typing import Any, Callable, Dict, Optional, Tuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dbsn_jax import dihedral, predict, realworld
from dbsn_jax.models import DnCNN, MWCNN
from dbsn_jax.train import checkpoints, stage1, stage2
from dbsn_jax.train import state as state_lib

# Per-axis bucket sides: 2^k and 3 * 2^(k-1), so padding wastes at most 50 % per axis.
BUCKETS = tuple(sorted({s for k in range(4, 15) for s in (2**k, 3 * 2**(k - 1))}))
# The values a float image may hold: [0, 1] plus room for noise (sigma 75/255 at 10 sigma).
FLOAT_RANGE = (-3.0, 4.0)
PRETRAINED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained")


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def bucket_size(n: int, multiple: int = 1) -> int:
  """The smallest bucket side >= n (and a multiple of `multiple`)."""
  for b in BUCKETS:
    if b >= n and b % multiple == 0:
      return b
  return _round_up(n, multiple)


@dataclasses.dataclass
class Denoiser:
  """A jit-compiled denoiser.

  `apply_fn(params, y)` is pure: float32 `(N, H, W, C)` -> `(N, H, W, C)`, usable
  inside your own `jax.jit` / `vmap`. It is `finish_fn(params, y, local_fn(params, y, None))`:
  `local_fn` is the spatially local network (tiled for large images), `finish_fn` the
  cheap per-image rest (stage 1: noise model and Bayes rule).
  """
  local_fn: Callable
  finish_fn: Callable
  params: Any
  channels: int
  kind: str                   # "stage1" or "stage2".
  radius: int                 # Receptive-field radius of local_fn, in pixels.
  multiple: int = 1           # local_fn needs H, W multiples of this.
  pad_mode: str = "symmetric"  # Padding of buckets/tiles ("constant" keeps the blind spot).
  pad_value: float = 0.0
  tile: int = 1024            # Tile side for large images (0: never tile).
  max_pixels: int = 1536 * 1536  # Tile when an image has more pixels than this.
  bucket: bool = True
  config: Optional[Dict] = None
  post_fn: Optional[Callable] = None  # (params, x) after cropping: e.g. a guided filter.
  # Whether flips and rotations keep the model's view of the image (not so for models
  # that tie noise models to Bayer phases: a flip swaps the phases).
  dihedral_ok: bool = True
  model: Any = None  # The Flax module behind local_fn (stage 1: predict.Stage1Model).
  # Stage 1: `(params, y, parts) -> Sigma_n (N, H, W, C, C)`, the noise covariance that
  # the Bayes rule used (`noise_cov`).
  noise_fn: Optional[Callable] = None
  # Stage 2 told the noise level (`denoiser.level_input`): local_fn takes the image with
  # its whole-image noise std appended as a channel (`predict.with_level`).
  takes_level: bool = False

  def __post_init__(self):
    self._finish = jax.jit(self.finish_fn)
    self._noise_std = jax.jit(predict.noise_std)
    self._with_level = jax.jit(predict.with_level)
    self._noise = jax.jit(self.noise_fn) if self.noise_fn else None
    self._post = jax.jit(self.post_fn) if self.post_fn else None
    self.traces = 0  # Compilations of local_fn (for tests and reports).

    def counted(params, y, image):
      self.traces += 1
      return self.local_fn(params, y, image)
    self._local = jax.jit(counted)

  def apply_fn(self, params, y):
    if self.takes_level:
      y = predict.with_level(y)
    x = self.finish_fn(params, y, self.local_fn(params, y, None))
    return self.post_fn(params, x) if self.post_fn else x

  # -- array plumbing ---------------------------------------------------------------
  def _pad(self, y, h, w):
    pads = ((0, 0), (0, h - y.shape[1]), (0, w - y.shape[2]), (0, 0))
    if self.pad_mode == "constant":
      return np.pad(y, pads, constant_values=self.pad_value)
    return np.pad(y, pads, mode=self.pad_mode)

  def _local_tiled(self, y, image):
    """local_fn over overlapping tiles of `y (N, H, W, C)`; exact in the valid parts."""
    n, h, w, _ = y.shape
    ov = _round_up(self.radius, self.multiple)
    # A tile barely wider than its two overlaps advances a pixel or so at a time (a
    # 300x400 image in 100,000 tiles): at least half of each tile is new pixels.
    least = _round_up(4 * ov, self.multiple)
    if self.tile < least:
      warnings.warn(f"tile {self.tile} is too small for this model's overlap of {ov} "
                    f"pixels per side; using tiles of {least}")
    t = _round_up(max(self.tile, least), self.multiple)
    th, tw = min(t, h), min(t, w)
    parts = None
    for top in _starts(h, th, ov, self.multiple):
      for left in _starts(w, tw, ov, self.multiple):
        out = self._local(self.params, y[:, top:top + th, left:left + tw],
                          image[:, top:top + th, left:left + tw])
        if parts is None:
          parts = {k: np.zeros((n, h, w) + v.shape[3:], np.float32) for k, v in out.items()}
        # Keep the tile's centre: drop `ov` pixels on sides that are not image borders.
        r0 = 0 if top == 0 else ov
        c0 = 0 if left == 0 else ov
        r1 = th if top + th == h else th - ov
        c1 = tw if left + tw == w else tw - ov
        for k, v in out.items():
          parts[k][:, top + r0:top + r1, left + c0:left + c1] = np.asarray(v)[
              :, r0:r1, c0:c1]
    return parts

  def run(self, y, tile: Optional[bool] = None, ensemble: bool = False,
          noise_std: Optional[float] = None) -> np.ndarray:
    """float32 `(N, H, W, C)` -> float32 NumPy `(N, H, W, C)`, unclipped.

    `ensemble`: the mean over the 8 flips and rotations of the image, each undone on
    its output (8x the time; both stages train on all 8, so each view is as good).
    `noise_std` (on the [0, 1] scale of `y`): the level to tell a model that takes one
    (`takes_level`) instead of estimating it on each image.
    """
    y = np.asarray(y, np.float32)
    std = None
    if noise_std is not None:
      if not self.takes_level:
        raise ValueError(f"this {self.kind} model is blind (it was not trained with "
                         "denoiser.level_input): it takes no noise level")
      if not np.isfinite(noise_std) or noise_std <= 0:
        raise ValueError(f"noise_std must be a positive number, got {noise_std}")
      std = np.full((y.shape[0],), noise_std, np.float32)
    elif self.takes_level and ensemble:  # One estimate for all eight views.
      std = self.noise_level(y, tile)
    if not ensemble:
      return self._run_once(y, tile, std)
    if not self.dihedral_ok:
      raise ValueError(f"this {self.kind} model ties its noise models to Bayer phases, "
                       "which flips and rotations swap: it cannot self-ensemble")
    total = 0.0
    for k in range(dihedral.COUNT):
      total = total + dihedral.inverse(self._run_once(dihedral.forward(y, k), tile, std), k)
    return total / dihedral.COUNT

  def noise_level(self, y, tile: Optional[bool] = None) -> np.ndarray:
    """The noise std `(N,)` a `takes_level` model is told on float32 `y (N, H, W, C)`:
    the classical white-noise estimate on each image ([0, 1] scale)."""
    canvas, image, _ = self._canvas(y, tile)
    return np.asarray(self._noise_std(canvas, image))

  def noise_cov(self, y, tile: Optional[bool] = None) -> np.ndarray:
    """Stage 1's estimated noise covariance `(N, H, W, C, C)` on float32 `y (N, H, W, C)`:
    the Sigma_n its Bayes rule uses (CNN_est; the per-image model picked by likelihood;
    per sub-image for photos). Buckets and tiles as `run`."""
    if self._noise is None:
      raise ValueError("noise levels need a stage-1 model (it holds the noise estimator)")
    canvas, parts = self._parts(y, tile)
    return np.asarray(self._noise(self.params, canvas, parts))[:, :y.shape[1], :y.shape[2]]

  def _canvas(self, y, tile):
    """(canvas, image mask, tiled) for `y (N, H, W, C)`: the padded array the local
    function sees, 1 on the image inside it."""
    y = np.asarray(y, np.float32)
    n, h, w, _ = y.shape
    m = self.multiple
    tiled = (self.tile > 0 and h * w > self.max_pixels) if tile is None else tile
    # The exact size's canvas (a multiple of `multiple`), then, untiled, up to a bucket:
    # the networks zero their features beyond the first, so its contents do not matter.
    canvas = self._pad(y, _round_up(h, m), _round_up(w, m))
    if not (tiled or not self.bucket):
      canvas = self._pad(canvas, bucket_size(h, m), bucket_size(w, m))
    # The image area: D-BSN zeroes the padding's features (exact-size results) and
    # per-image averages leave it out; an array, not a shape, so nothing compiles per size.
    image = np.zeros(canvas.shape[:3] + (1,), np.float32)
    image[:, :h, :w] = 1.0
    return canvas, image, tiled

  def _parts(self, y, tile, std=None):
    """(canvas, local_fn's parts on it plus the `valid` image mask) for `y (N, H, W, C)`;
    `std (N,)`: the level to tell a `takes_level` model (None: estimated)."""
    canvas, image, tiled = self._canvas(y, tile)
    if self.takes_level:  # The whole image's level, whatever the tiles.
      canvas = np.asarray(self._with_level(canvas, image, std))
    parts = self._local_tiled(canvas, image) if tiled else self._local(self.params, canvas,
                                                                        image)
    parts["valid"] = image
    return canvas, parts

  def _run_once(self, y, tile, std=None):
    canvas, parts = self._parts(y, tile, std)
    x = np.asarray(self._finish(self.params, canvas, parts))[:, :y.shape[1], :y.shape[2]]
    return np.asarray(self._post(self.params, x)) if self._post else x

  def __call__(self, image, tile: Optional[bool] = None, ensemble: bool = False,
               noise_std: Optional[float] = None):
    """Denoise an image or batch; same shape, dtype and range as the input.
    `ensemble=True` averages over the 8 flips and rotations (`run`). `noise_std`, on the
    0-255 scale whatever the dtype (e.g. 25): the level to tell a model trained with
    `denoiser.level_input`, which otherwise estimates it on each image."""
    arr = np.asarray(image)
    shape, dtype = arr.shape, arr.dtype
    if arr.ndim == 2:
      arr = arr[None, ..., None]
    elif arr.ndim == 3:
      arr = arr[None]
    elif arr.ndim != 4:
      raise ValueError(f"expected (H, W), (H, W, C) or (N, H, W, C), got shape {shape}")
    if arr.size == 0:
      raise ValueError(f"the image is empty (shape {shape})")
    if arr.shape[-1] != self.channels:
      raise ValueError(f"this {self.kind} model denoises {self.channels}-channel images, "
                       f"got {arr.shape[-1]} channels (shape {shape})")
    if jnp.issubdtype(dtype, jnp.integer):
      if dtype not in (np.uint8, np.uint16):
        raise ValueError(f"integer images must be uint8 or uint16, got {dtype}")
      peak = float(np.iinfo(dtype).max)
      y = arr.astype(np.float32) / np.float32(peak)
    elif jnp.issubdtype(dtype, jnp.floating):  # bfloat16 too, which NumPy does not count.
      peak = None
      y = arr.astype(np.float32)
      if not np.isfinite(y).all():
        raise ValueError("the image contains NaN or Inf values")
      lo, hi = float(np.min(y)), float(np.max(y))
      # Noisy [0, 1] images overshoot a little; a 0-255 float image would be clipped to
      # white without a word.
      if lo < FLOAT_RANGE[0] or hi > FLOAT_RANGE[1]:
        raise ValueError(f"float images must hold values in [0, 1] (noise may overshoot "
                         f"a little), got {lo:g}..{hi:g}: divide 8-bit data by 255 and "
                         "16-bit data by 65535, or pass the integer array")
    else:
      raise ValueError(f"unsupported image dtype {dtype}")
    std = None if noise_std is None else float(noise_std) / 255.0
    x = np.clip(self.run(y, tile, ensemble, std), 0.0, 1.0)
    if peak is not None:
      x = np.round(x * np.float32(peak))
    # The input's own kind of array and dtype (float64 too, which jnp would make float32
    # without x64).
    x = x.reshape(shape).astype(dtype)
    return jnp.asarray(x) if isinstance(image, jax.Array) else x


def _starts(size: int, tile: int, overlap: int, multiple: int):
  """Tile origins (multiples of `multiple`) covering [0, size) with `overlap`."""
  if tile >= size:
    return [0]
  step = max(multiple, ((tile - 2 * overlap) // multiple) * multiple)
  starts = list(range(0, size - tile, step))
  last = ((size - tile) // multiple) * multiple
  if size - tile - last:  # Align the last tile; the canvas is a multiple already.
    last = size - tile
  return sorted(set(starts + [last]))


# -- building denoisers from trained models -------------------------------------------
def stage1_denoiser(config, model, params, **kw) -> Denoiser:
  """D-BSN + CNN_est + Bayes rule (paper Eq. 9).

  Real-photo models (`realworld.downsample` f > 1) run D-BSN on the f^2 pixel-shuffled
  sub-images of the (tile of the) image, each sub-image with its Bayer group's noise
  model, reassemble, and guided-filter the cropped result if the config asks. Tiles
  start at multiples of f, so every pixel keeps its Bayer phase.
  """
  rw = realworld.settings(config)
  f, groups = rw.downsample, rw.num_groups
  finish_all = predict.finish_fn(model, rw, guided_filter=False)

  def finish(p, y, parts):
    return finish_all(p, y, parts)["bayes"]

  def noise(p, y, parts):
    return finish_all(p, y, parts)["sigma_n"]

  post = None
  if rw.guided_filter:
    post = lambda p, x: realworld.guided_filter(x, x, rw.gf_radius, rw.gf_eps)  # noqa: E731
  # Constant padding: mirrored borders would show a pixel to itself through the mirror.
  return Denoiser(predict.local_fn(model, rw), finish, params, config.channels, "stage1",
                  f * model.dbsn.receptive_radius, multiple=f, pad_mode="constant",
                  pad_value=0.5, config=config.to_dict(), post_fn=post,
                  dihedral_ok=groups <= 1, model=model, noise_fn=noise, **kw)


def stage2_denoiser(config, model, variables, **kw) -> Denoiser:
  """The distilled MWCNN or DnCNN; a sub-image one (`distill.domain='subimages'`) runs
  on the f^2 pixel-shuffled sub-images of the (tile of the) image, reassembled and
  guided-filtered as its stage 1 was."""
  domain = stage2.distill_domain(config)
  rw = realworld.settings(config) if domain == "subimages" else realworld.Settings()
  local_net = predict.stage2_local_fn(model, rw, domain)

  def local(v, y, image):  # The networks zero what lies outside the image's canvas.
    return {"x": local_net(v, y, image)}

  def finish(v, y, parts):
    return parts["x"]

  if isinstance(model, MWCNN):
    n, levels = model.convs, len(model.widths)
    # 2(n + 1) 3x3 convs at each scale 2^l, plus the DWT grid.
    radius, multiple = sum(2 * (n + 1) * 2**l for l in range(1, levels + 1)) + 2**levels, \
        2**levels
  elif isinstance(model, DnCNN):
    radius, multiple = model.depth, 1
  else:
    raise ValueError(f"unknown stage-2 model {type(model).__name__}")
  f = rw.downsample
  return Denoiser(local, finish, variables, config.channels, "stage2", f * radius,
                  f * multiple, config=config.to_dict(), model=model,
                  post_fn=predict.stage2_post_fn(rw, domain),
                  takes_level=model.level_input, **kw)


def from_workdir(workdir: str, **kw) -> Denoiser:
  """A denoiser from a stage-1 or stage-2 training workdir (newest checkpoint)."""
  saved = checkpoints.read_config(workdir)
  if saved.get("stage") == "stage1":
    config, model, params = stage1.load(workdir)
    return stage1_denoiser(config, model, params, **kw)
  if saved.get("stage") == "stage2":
    config, model, state = stage2.load(workdir)
    return stage2_denoiser(config, model,
                           {"params": state_lib.eval_params(state),
                            "batch_stats": state.batch_stats}, **kw)
  raise ValueError(f"{workdir} holds neither a stage-1 nor a stage-2 checkpoint")


def save_weights(denoiser: Denoiser, out_dir: str) -> None:
  """Write `weights.npz` (plain arrays, no pickle) and `config.json` to `out_dir`."""
  os.makedirs(out_dir, exist_ok=True)
  flat = {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(v)
          for path, v in jax.tree_util.tree_leaves_with_path(denoiser.params)}
  tmp = os.path.join(out_dir, "weights.tmp.npz")
  np.savez(tmp, **flat)
  os.replace(tmp, os.path.join(out_dir, "weights.npz"))
  with open(os.path.join(out_dir, "config.json.tmp"), "w") as f:
    json.dump({"kind": denoiser.kind, "config": denoiser.config}, f, indent=1)
  os.replace(os.path.join(out_dir, "config.json.tmp"), os.path.join(out_dir, "config.json"))


def _not_weights(path: str) -> str:
  """The start of every message about a folder that is not a readable weights folder."""
  return f"not a dbsn-jax weights folder: {path}"


def _read_weights(path: str):
  """(config.json's dict, weights.npz's arrays) of a weights folder; a ValueError that
  says "not a dbsn-jax weights folder" names what is wrong with it."""
  where = _not_weights(path)
  try:
    with open(os.path.join(path, "config.json")) as f:
      meta = json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f"{where}: cannot read config.json ({e})") from e
  if not isinstance(meta, dict) or meta.get("kind") not in ("stage1", "stage2") \
      or not isinstance(meta.get("config"), dict):
    raise ValueError(f"{where}: config.json needs \"kind\" (\"stage1\" or \"stage2\") and "
                     "a \"config\" object, as save_weights writes them")
  try:
    with np.load(os.path.join(path, "weights.npz"), allow_pickle=False) as z:
      flat = {k: z[k] for k in z.files}
  except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
    why = "it holds pickled objects, not plain arrays" if "pickle" in str(e) else str(e)
    raise ValueError(f"{where}: cannot read weights.npz ({why})") from e
  return meta, flat


def from_weights(path: str, **kw) -> Denoiser:
  """A denoiser from a `save_weights` directory; loads no code (allow_pickle=False)."""
  meta, flat = _read_weights(path)
  tree: Dict[str, Any] = {}
  for key, value in flat.items():
    node = tree
    *parents, leaf = key.split("/")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = jnp.asarray(value)
  config = ml_collections.ConfigDict(meta["config"])
  try:
    if meta["kind"] == "stage1":
      num = int(meta["config"].get("num_images", 0))
      model = predict.build_model(config, num)
      d = stage1_denoiser(config, model, tree, **kw)
    else:
      model = predict.build_denoiser(config)
      d = stage2_denoiser(config, model, tree, **kw)
  except (AttributeError, KeyError, TypeError) as e:  # ConfigDict raises these for gaps.
    raise ValueError(f"{_not_weights(path)}: its config.json lacks a setting ({e})") from e
  _check_shapes(d, path)
  return d


def _check_shapes(d: Denoiser, path: str):
  """Refuse weights whose shapes do not fit the architecture in their config."""
  y = jnp.zeros((1, 2 * d.multiple * 8, 2 * d.multiple * 8, d.channels))
  try:
    jax.eval_shape(d.apply_fn, d.params, y)
  except Exception as e:  # Flax raises several types for mismatched parameters.
    raise ValueError(f"model weights in {path} do not match their config: {e}") from e


def pretrained_names() -> Tuple[str, ...]:
  """Names of the models bundled with the package."""
  if not os.path.isdir(PRETRAINED_DIR):
    return ()
  return tuple(sorted(n for n in os.listdir(PRETRAINED_DIR)
                      if os.path.isfile(os.path.join(PRETRAINED_DIR, n, "weights.npz"))))


def load_denoiser(path_or_name: str, **kw) -> Denoiser:
  """A bundled model name (e.g. 'gray-awgn25'), a weights directory, or a workdir."""
  if path_or_name in pretrained_names():
    return from_weights(os.path.join(PRETRAINED_DIR, path_or_name), **kw)
  if os.path.isfile(os.path.join(path_or_name, "weights.npz")):
    return from_weights(path_or_name, **kw)
  if os.path.isdir(path_or_name):
    return from_workdir(path_or_name, **kw)
  raise ValueError(f"no model {path_or_name!r}: not a bundled name "
                   f"({', '.join(pretrained_names()) or 'none installed'}), weights "
                   "directory or training workdir")


@functools.lru_cache(maxsize=4)
def _cached(name: str) -> Denoiser:
  return load_denoiser(name)


def denoise(image, model: str = "gray-awgn25", ensemble: bool = False,
            noise_std: Optional[float] = None):
  """One-line form: `denoise(image, model='gray-awgn25')`; same shape/dtype out.
  `ensemble=True`: the mean over the 8 flips and rotations (8x the time); `noise_std`
  (0-255 scale): the level for a model that takes one (`Denoiser.__call__`)."""
  return _cached(model)(image, ensemble=ensemble, noise_std=noise_std)


def export(denoiser: Denoiser, shape: Tuple[int, int, int, int]) -> bytes:
  """Serialise `apply_fn` with its parameters for float32 inputs of `shape`
  `(N, H, W, C)` (StableHLO via jax.export); runs without this package's code.
  H and W must be multiples of `denoiser.multiple`."""
  if shape[1] % denoiser.multiple or shape[2] % denoiser.multiple:
    raise ValueError(f"export shape {shape}: H and W must be multiples of {denoiser.multiple}")
  fn = jax.jit(lambda y: denoiser.apply_fn(denoiser.params, y))
  exported = jax.export.export(fn)(jax.ShapeDtypeStruct(shape, jnp.float32))
  return bytes(exported.serialize())


def load_exported(blob: bytes) -> Callable:
  """The callable `(N, H, W, C) float32 -> (N, H, W, C)` of an `export`ed denoiser."""
  return jax.export.deserialize(bytearray(blob)).call
