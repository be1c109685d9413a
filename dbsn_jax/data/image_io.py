"""Read and write image files keeping their bit depth and mode (training and the CLIs).

`read` returns the pixel array in its own integer type — `(H, W)` or `(H, W, C)`,
uint8 or uint16 — plus an alpha channel kept aside. `write` is atomic (a temporary
file, then rename) so an interrupted run never leaves a half-written image; a kill
during a write leaves a temporary file that names its writer's pid, which
`remove_stale_temporaries` deletes once that process is gone.
"""
import os
import re
import struct
import tempfile
from typing import List, Optional, Tuple

import numpy as np
from PIL import Image, ImageOps

_TEMP_PREFIX = ".dbsn_tmp_"
_TEMP_RE = re.compile(re.escape(_TEMP_PREFIX) + r"(\d+)_")


# (bit depth, colour type) of the PNGs Pillow decodes to 8 bits: RGB, gray+alpha, RGBA.
DEEP_PNG = ((16, 2), (16, 4), (16, 6))


def png_depth(path: str) -> Tuple[int, int]:
  """(bit depth, colour type) from a PNG's header, or (0, 0) for other files."""
  with open(path, "rb") as f:
    head = f.read(29)
  if len(head) < 29 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
    return 0, 0
  return struct.unpack(">BB", head[24:26])


def read_png16(path: str) -> Optional[np.ndarray]:
  """A `DEEP_PNG` at full depth, uint16 RGB, RGBA or gray+alpha (Pillow would give 8
  bits); None for any other file."""
  depth = png_depth(path)
  if depth not in DEEP_PNG:
    return None
  import cv2
  arr = cv2.imread(path, cv2.IMREAD_UNCHANGED)
  if arr is None or arr.dtype != np.uint16:
    raise ValueError("OpenCV cannot decode it at 16 bits")
  if depth[1] == 4:  # OpenCV expands gray+alpha to BGRA.
    return arr[..., [0, 3]]
  if arr.ndim == 3:  # OpenCV's BGR(A) -> RGB(A).
    arr = arr[..., [2, 1, 0, 3][:arr.shape[-1]]]
  return arr


def read_tiff(path: str) -> np.ndarray:
  """The image of a single-image TIFF, channels last; a ValueError for a stack."""
  import tifffile
  with tifffile.TiffFile(path) as tif:
    series = tif.series[0]
    if len(series.pages) > 1:
      raise ValueError(f"it holds {len(series.pages)} pages (a stack); dbsn-jax reads "
                       "single images: split the pages into files first")
    arr = series.asarray()
  if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[-1] not in (3, 4):
    arr = np.moveaxis(arr, 0, -1)
  return arr


def read(path: str) -> Tuple[np.ndarray, Optional[np.ndarray]]:
  """(pixels, alpha or None); errors name the file."""
  try:
    if path.lower().endswith((".tif", ".tiff")):
      arr = read_tiff(path)
    elif (arr := read_png16(path)) is not None:
      pass
    else:
      with Image.open(path) as im:
        frames = getattr(im, "n_frames", 1)
        if frames > 1:
          raise ValueError(f"it holds {frames} frames (animated or multi-page); "
                           "dbsn-jax reads single images: split the frames first")
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
  except Exception as e:  # PIL, tifffile and OpenCV raise many types for bad files.
    raise ValueError(f"cannot read image {path}: {e}") from e
  if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (1, 2, 3, 4)):
    raise ValueError(f"image {path} has unsupported shape {arr.shape}")
  if min(arr.shape[:2]) < 1:
    raise ValueError(f"image {path} is empty ({arr.shape[0]}x{arr.shape[1]} pixels)")
  if arr.dtype not in (np.uint8, np.uint16):
    if np.issubdtype(arr.dtype, np.floating):
      arr = np.clip(np.round(arr * 65535), 0, 65535).astype(np.uint16)
    else:
      raise ValueError(f"image {path} has unsupported pixel type {arr.dtype}")
  if arr.ndim == 3 and arr.shape[-1] in (2, 4):  # Keep alpha aside.
    return arr[..., :-1].squeeze(-1) if arr.shape[-1] == 2 else arr[..., :3], arr[..., -1]
  if arr.ndim == 3 and arr.shape[-1] == 1:
    arr = arr[..., 0]
  return arr, None


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # Someone else's live process.
    return True
  return True


def remove_stale_temporaries(directory: str) -> List[str]:
  """Delete the temporary files that killed writers left in `directory`; their paths."""
  removed = []
  for name in os.listdir(directory):
    m = _TEMP_RE.match(name)
    path = os.path.join(directory, name)
    if m and not _alive(int(m.group(1))) and os.path.isfile(path):  # Not ours: we live.
      os.remove(path)
      removed.append(path)
  return removed


def output_extension(pixels: np.ndarray) -> str:
  """'.png' for 8-bit images, '.tif' for 16-bit ones."""
  return ".tif" if pixels.dtype == np.uint16 else ".png"


def write(path: str, pixels: np.ndarray, alpha: Optional[np.ndarray] = None) -> None:
  """Write uint8 as PNG, uint16 as TIFF (or PNG for gray), atomically."""
  if alpha is not None:
    pixels = np.dstack([pixels, alpha.astype(pixels.dtype)])
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(prefix=f"{_TEMP_PREFIX}{os.getpid()}_",
                             suffix=os.path.splitext(path)[1], dir=directory)
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
