"""Which photos of a clean set contain an image of the noisy set as a crop.

Unpaired learning needs the noisy and the clean images to show different scenes. Crops
hide overlap: the shared Train400 images are 180x180 crops of CBSD432 photos. A crop is
found by a hash of one textured 3x3 anchor block, coarsely binned so that small decoding
differences (a grey conversion rounded differently, +-2 of 255) keep its bins, then
verified pixel by pixel. Cost: one pass over the photos' pixels.
"""
from typing import Dict, List, Sequence, Tuple

import numpy as np

from dbsn_jax.data.sources import ImageSet

_BIN = 16  # Width of a bin, in 0-255 levels.
_TOL = 2  # Largest per-pixel difference of a match, in 0-255 levels.


def _levels(img: np.ndarray) -> np.ndarray:
  """`(H, W, C)` in [0, 1] -> `(H, W)` int16 luma in 0-255 levels."""
  return np.rint(255.0 * np.asarray(img, np.float64).mean(-1)).astype(np.int16)


def _window_keys(bins: np.ndarray) -> np.ndarray:
  """The 3x3 windows of `bins (H, W)` (values < 256 / _BIN) as int64 keys `(H - 2, W - 2)`."""
  h, w = bins.shape
  key = np.zeros((h - 2, w - 2), np.int64)
  for dy in range(3):
    for dx in range(3):
      key = key * (256 // _BIN) + bins[dy:h - 2 + dy, dx:w - 2 + dx]
  return key


def _anchor(levels: np.ndarray):
  """(key, dy, dx) of the most textured 3x3 block whose 9 levels all sit at least _TOL
  from a bin edge (so a match within _TOL has the same bins), or None."""
  safe = (levels % _BIN >= _TOL) & (levels % _BIN < _BIN - _TOL)
  h, w = levels.shape
  if h < 3 or w < 3:
    return None
  ok = np.ones((h - 2, w - 2), bool)
  for dy in range(3):
    for dx in range(3):
      ok &= safe[dy:h - 2 + dy, dx:w - 2 + dx]
  if not ok.any():
    return None
  f = levels.astype(np.float64)
  mean = sum(f[dy:h - 2 + dy, dx:w - 2 + dx] for dy in range(3) for dx in range(3)) / 9
  sq = sum(f[dy:h - 2 + dy, dx:w - 2 + dx] ** 2 for dy in range(3) for dx in range(3)) / 9
  dy, dx = np.unravel_index(np.argmax(np.where(ok, sq - mean * mean, -1.0)), ok.shape)
  return int(_window_keys(levels[dy:dy + 3, dx:dx + 3] // _BIN)[0, 0]), int(dy), int(dx)


def crop_sources(crops: Sequence[np.ndarray],
                 photos: Sequence[np.ndarray]) -> Dict[int, Tuple[int, int, int]]:
  """`{i: (j, top, left)}` for every crop `crops[i]` found in photo `photos[j]` (all
  pixels within 2/255 of the mean over channels); images `(H, W, C)` in [0, 1]."""
  return _find([_levels(c) for c in crops], [_levels(p) for p in photos])


def _find(crop_levels: List[np.ndarray], photo_levels: List[np.ndarray]):
  """`crop_sources` on images already turned into `_levels`."""
  by_key: Dict[int, list] = {}
  for i, lv in enumerate(crop_levels):
    a = _anchor(lv)
    if a is not None:
      by_key.setdefault(a[0], []).append((i, a[1], a[2]))
  found: Dict[int, Tuple[int, int, int]] = {}
  if not by_key:
    return found
  keys = np.array(sorted(by_key), np.int64)
  for j, lv in enumerate(photo_levels):
    if min(lv.shape) < 3:
      continue
    win = _window_keys(lv // _BIN)
    for y, x in zip(*np.nonzero(np.isin(win, keys))):
      for i, dy, dx in by_key[int(win[y, x])]:
        c = crop_levels[i]
        top, left = y - dy, x - dx
        if i in found or top < 0 or left < 0 or top + c.shape[0] > lv.shape[0] \
            or left + c.shape[1] > lv.shape[1]:
          continue
        if np.abs(lv[top:top + c.shape[0], left:left + c.shape[1]] - c).max() <= _TOL:
          found[i] = (j, int(top), int(left))
  return found


def drop_overlap(clean: ImageSet, noisy: ImageSet) -> Tuple[ImageSet, List[str]]:
  """`clean` without every image that contains one of `noisy` as a crop or is a crop of
  one (the same image included), and the names dropped."""
  clean_levels = [_levels(c) for c in clean.images]  # Once, for both directions.
  noisy_levels = [_levels(n) for n in noisy.images]
  inside = {j for j, _, _ in _find(noisy_levels, clean_levels).values()}
  inside |= set(_find(clean_levels, noisy_levels))
  keep = [j for j in range(len(clean)) if j not in inside]
  return (ImageSet([clean.images[j] for j in keep], [clean.names[j] for j in keep]),
          [clean.names[j] for j in sorted(inside)])
