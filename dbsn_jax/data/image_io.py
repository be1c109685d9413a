"""Read and write image files keeping their bit depth and mode (for dbsn-denoise).

`read` returns the pixel array in its own integer type — `(H, W)` or `(H, W, C)`,
uint8 or uint16 — plus an alpha channel kept aside. `write` is atomic (a temporary
file, then rename) so an interrupted run never leaves a half-written image.
"""
import os
import tempfile
from typing import Optional, Tuple

import numpy as np
from PIL import Image, ImageOps


def read(path: str) -> Tuple[np.ndarray, Optional[np.ndarray]]:
  """(pixels, alpha or None); errors name the file."""
  try:
    if path.lower().endswith((".tif", ".tiff")):
      import tifffile
      arr = tifffile.imread(path)
      if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[-1] not in (3, 4):
        arr = np.moveaxis(arr, 0, -1)
    else:
      with Image.open(path) as im:
        im.load()
        im = ImageOps.exif_transpose(im)
        if im.mode in ("I;16", "I;16B", "I;16L"):
          arr = np.asarray(im, np.uint16)
        elif im.mode == "I":
          raw = np.asarray(im)
          arr = raw.astype(np.uint16) if raw.min() >= 0 and raw.max() <= 65535 else None
          if arr is None:
            raise ValueError("32-bit integer values outside 0..65535")
        elif im.mode in ("L", "RGB", "RGBA", "LA"):
          arr = np.asarray(im)
        elif im.mode == "1":
          arr = np.asarray(im.convert("L"))
        else:  # Palette, CMYK, YCbCr, ...: decoded to RGB(A).
          arr = np.asarray(im.convert("RGBA" if "transparency" in im.info else "RGB"))
  except Exception as e:  # PIL and tifffile raise many types for corrupt files.
    raise ValueError(f"cannot read image {path}: {e}") from e
  if arr.dtype not in (np.uint8, np.uint16):
    if np.issubdtype(arr.dtype, np.floating):
      arr = np.clip(np.round(arr * 65535), 0, 65535).astype(np.uint16)
    else:
      raise ValueError(f"image {path} has unsupported pixel type {arr.dtype}")
  if arr.ndim == 3 and arr.shape[-1] in (2, 4):  # Keep alpha aside.
    return arr[..., :-1].squeeze(-1) if arr.shape[-1] == 2 else arr[..., :3], arr[..., -1]
  if arr.ndim not in (2, 3) or min(arr.shape[:2]) < 1:
    raise ValueError(f"image {path} has unsupported shape {arr.shape}")
  return arr, None


def output_extension(pixels: np.ndarray) -> str:
  """'.png' for 8-bit images, '.tif' for 16-bit ones."""
  return ".tif" if pixels.dtype == np.uint16 else ".png"


def write(path: str, pixels: np.ndarray, alpha: Optional[np.ndarray] = None) -> None:
  """Write uint8 as PNG, uint16 as TIFF (or PNG for gray), atomically."""
  if alpha is not None:
    pixels = np.dstack([pixels, alpha.astype(pixels.dtype)])
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=os.path.splitext(path)[1], dir=directory)
  os.close(fd)
  try:
    if path.lower().endswith((".tif", ".tiff")):
      import tifffile
      tifffile.imwrite(tmp, pixels)
    else:
      Image.fromarray(pixels).save(tmp)
    # mkstemp makes the file 0600; give it the mode a plain open() would (umask applied).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
