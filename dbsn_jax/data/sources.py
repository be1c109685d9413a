"""Image sources: folders of PNG/JPEG/TIFF, scikit-image's bundled photos, TFDS.

Every source yields float32 `(H, W, C)` arrays in [0, 1] with the requested C (1 or 3).
A source is named by a spec string, so configs and flags can pick one:
  "sample" or "sample:train" / "sample:eval" / "sample:camera,coins"  bundled photos
  "shared:Train400"           a folder under the data dir ($DBSN_DATA_DIR or ../shared/data)
  "folder:/path" or "/path"   any folder of images
  "tfds:NAME[:SPLIT[:FEATURE]]"  a TFDS dataset's image feature (default 'image', or
                              the only image feature): a prepared catalog dataset
                              (e.g. tfds:div2k:train:hr), or a benchmark of
                              dbsn_jax.data.benchmarks (tfds:bsd68, tfds:cc15:test:noisy),
                              built on first use from its manual folder
"""
import dataclasses
import glob
import os
import warnings
from typing import List, Optional, Sequence

import numpy as np
from PIL import Image, ImageOps

from dbsn_jax.data import benchmarks, image_io
from dbsn_jax.data.files import IMAGE_EXTENSIONS, data_dir  # noqa: F401 (re-exported)

# scikit-image's bundled photos (no download); two held out for evaluation.
SAMPLE_EVAL = ("chelsea", "camera")
SAMPLE_TRAIN = ("astronaut", "coffee", "rocket", "motorcycle_left", "brick", "grass",
                "gravel", "coins", "moon", "hubble_deep_field", "ihc")
_SAMPLE_FILES = {"hubble_deep_field": "hubble_deep_field.jpg", "rocket": "rocket.jpg"}


@dataclasses.dataclass
class ImageSet:
  """Decoded images and their names (file stems)."""
  images: List[np.ndarray]
  names: List[str]

  def __len__(self):
    return len(self.images)


def to_channels(img: np.ndarray, channels: int) -> np.ndarray:
  """`(H, W)` or `(H, W, C)` float -> `(H, W, channels)`; RGB->gray by BT.601."""
  if img.ndim == 2:
    img = img[..., None]
  if img.shape[-1] == channels:
    return img
  if channels == 1:
    return (img[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
  if img.shape[-1] == 1:
    return np.repeat(img, channels, -1)
  raise ValueError(f"cannot convert {img.shape[-1]} channels to {channels}")


def _from_pil(im: Image.Image) -> np.ndarray:
  im = ImageOps.exif_transpose(im)
  if im.mode in ("I;16", "I;16B", "I;16L", "I"):
    arr = np.asarray(im, dtype=np.float64)
    peak = 65535.0 if arr.max(initial=0) > 255 or "16" in im.mode else 255.0
    return (arr / peak).astype(np.float32)
  if im.mode == "F":
    return np.asarray(im, dtype=np.float32)
  if im.mode in ("RGBA", "LA", "P", "PA") or "transparency" in im.info:
    im = im.convert("RGBA" if im.mode != "LA" else "LA")
    arr = np.asarray(im, dtype=np.float32) / 255.0
    color, alpha = arr[..., :-1], arr[..., -1:]
    return color * alpha + (1.0 - alpha)  # Composite on white.
  if im.mode not in ("L", "RGB"):
    im = im.convert("RGB")
  return np.asarray(im, dtype=np.float32) / 255.0


def load_image(path: str, channels: int) -> np.ndarray:
  """Decode one file to float32 `(H, W, channels)` in [0, 1]; errors name the file."""
  try:
    if path.lower().endswith((".tif", ".tiff")):  # 16-bit RGB, which PIL cannot decode.
      arr = image_io.read_tiff(path)
      if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
      peak = float(np.iinfo(arr.dtype).max) if np.issubdtype(arr.dtype, np.integer) else 1.0
      img = arr.astype(np.float32) / peak
    elif (deep := image_io.read_png16(path)) is not None:  # PIL would give 8 bits.
      arr = deep.astype(np.float32) / 65535.0
      color, alpha = arr[..., :-1], arr[..., -1:]
      img = arr if arr.shape[-1] == 3 else color * alpha + (1.0 - alpha)  # On white.
    else:
      with Image.open(path) as im:
        im.load()
        img = _from_pil(im)
  except Exception as e:  # PIL and tifffile raise many types for corrupt files.
    raise ValueError(f"cannot read image {path}: {e}") from e
  if img.ndim not in (2, 3) or min(img.shape[:2]) < 1:
    raise ValueError(f"image {path} has unsupported shape {img.shape}")
  return np.ascontiguousarray(to_channels(img, channels))


def list_images(folder: str) -> List[str]:
  """Image files in `folder` (not recursive), sorted by name."""
  if not os.path.isdir(folder):
    raise FileNotFoundError(f"image folder {folder} does not exist")
  files = sorted(f for f in glob.glob(os.path.join(folder, "*"))
                 if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(f))
  if not files:
    raise FileNotFoundError(f"image folder {folder} has no {'/'.join(IMAGE_EXTENSIONS)} files")
  return files


def load_folder(folder: str, channels: int, start: int = 0,
                stop: Optional[int] = None) -> ImageSet:
  """Images `[start:stop]` of a folder in name order; unreadable files are skipped
  with a warning naming them."""
  images, names = [], []
  for path in list_images(folder)[start:stop]:
    try:
      images.append(load_image(path, channels))
      names.append(os.path.splitext(os.path.basename(path))[0])
    except ValueError as e:
      warnings.warn(f"skipping {e}")
  if not images:
    raise ValueError(f"no readable images in {folder}[{start}:{stop}]")
  return ImageSet(images, names)


def load_sample(names: Sequence[str], channels: int) -> ImageSet:
  """scikit-image's bundled photos by name (shipped in the wheel, no download)."""
  import skimage
  root = os.path.join(os.path.dirname(skimage.__file__), "data")
  images = [load_image(os.path.join(root, _SAMPLE_FILES.get(n, n + ".png")), channels)
            for n in names]
  return ImageSet(images, list(names))


def load_tfds(name: str, split: str, channels: int, start: int = 0,
              stop: Optional[int] = None, feature: str = "") -> ImageSet:
  """Images of a TFDS dataset's image `feature`, read via random-access data_source.

  Benchmarks of `dbsn_jax.data.benchmarks` (bsd68, cbsd68, kodak24, set12, mcmaster,
  cc15) are built from their manual folder on first use; other names must be prepared
  TFDS datasets (`tfds build NAME`) in $TFDS_DATA_DIR.
  """
  try:
    if name in benchmarks.SPECS:
      source = benchmarks.data_source(name, split or "test")
    else:
      import tensorflow_datasets as tfds
      source = tfds.data_source(name, split=split or "train")
  except (ValueError, FileNotFoundError):
    raise
  except Exception as e:
    raise ValueError(f"TFDS dataset {name!r} split {split!r} is not available "
                     f"(prepare it first with `tfds build {name}`): {e}") from e
  feature = feature or _image_feature(name, source)
  stop = len(source) if stop is None else min(stop, len(source))
  images, names = [], []
  for i in range(start, stop):
    record = source[i]
    if feature not in record:
      raise ValueError(f"TFDS dataset {name!r} has no feature {feature!r}; it has "
                       f"{', '.join(sorted(record))}")
    arr = np.asarray(record[feature])
    peak = float(np.iinfo(arr.dtype).max) if np.issubdtype(arr.dtype, np.integer) else 1.0
    images.append(to_channels(arr.astype(np.float32) / peak, channels))
    label = record.get("name", b"")
    label = label.decode() if isinstance(label, bytes) else str(label)
    names.append(label or f"{name}_{i}")
  return ImageSet(images, names)


def _image_feature(name: str, source) -> str:
  """'image' if the dataset has it, else its only image feature (e.g. div2k: hr/lr)."""
  try:
    import tensorflow_datasets as tfds
    feats = source.dataset_info.features
    image_feats = [k for k, v in feats.items() if isinstance(v, tfds.features.Image)]
  except AttributeError:
    image_feats = ["image"]
  if "image" in image_feats or not image_feats:
    return "image"
  if len(image_feats) == 1:
    return image_feats[0]
  raise ValueError(f"TFDS dataset {name!r} has several image features "
                   f"({', '.join(image_feats)}): pick one, e.g. "
                   f"tfds:{name}:SPLIT:{image_feats[0]}")


def load(spec: str, channels: int, start: int = 0, stop: Optional[int] = None) -> ImageSet:
  """Load the images a spec string names (see module docstring), `[start:stop]`."""
  if not spec:
    raise ValueError("empty image source spec")
  kind, _, arg = spec.partition(":")
  if kind == "sample":
    names = {"": SAMPLE_TRAIN + SAMPLE_EVAL, "train": SAMPLE_TRAIN, "eval": SAMPLE_EVAL}.get(
        arg, tuple(n for n in arg.split(",") if n))
    s = load_sample(names, channels)
    return ImageSet(s.images[start:stop], s.names[start:stop])
  if kind == "shared":
    return load_folder(os.path.join(data_dir(), arg), channels, start, stop)
  if kind == "tfds":
    name, _, rest = arg.partition(":")
    split, _, feature = rest.partition(":")
    return load_tfds(name, split, channels, start, stop, feature)
  if kind == "folder":
    return load_folder(arg, channels, start, stop)
  if os.path.isdir(spec):
    return load_folder(spec, channels, start, stop)
  raise ValueError(f"unknown image source {spec!r}: use sample[:names], shared:NAME, "
                   "folder:PATH or tfds:NAME[:SPLIT[:FEATURE]]")
