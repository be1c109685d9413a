"""Crops of one set found in the photos of another, despite small decoding differences."""
import numpy as np

from dbsn_jax.data import overlap
from dbsn_jax.data.sources import ImageSet


def _photos(rng, n=4, shape=(70, 90, 3)):
  return [np.round(rng.uniform(0, 1, shape) * 255) / 255 for _ in range(n)]


def test_crops_are_found_where_they_were_cut_despite_rounding():
  rng = np.random.default_rng(0)
  photos = _photos(rng)
  cuts = {0: (2, 11, 23), 1: (0, 0, 0), 2: (3, 38, 58)}  # crop i: (photo, top, left)
  crops = []
  for i, (j, t, l) in cuts.items():
    c = photos[j][t:t + 32, l:l + 32].mean(-1, keepdims=True)  # Gray, as Train400 is.
    crops.append(np.clip(c + rng.integers(-1, 2, c.shape) / 255, 0, 1))  # +-1 level.
  crops.append(_photos(rng, 1, (32, 32, 1))[0])  # Cut from no photo.
  assert overlap.crop_sources(crops, photos) == cuts


def test_overlap_beyond_two_levels_is_not_a_match():
  rng = np.random.default_rng(1)
  photos = _photos(rng, 2)
  crop = photos[1][5:45, 7:47].copy()
  crop[20, 20] += 3 / 255  # One pixel 3 levels off: another image.
  assert overlap.crop_sources([crop], photos) == {}


def test_drop_overlap_leaves_out_photos_holding_a_noisy_image_and_the_same_image():
  rng = np.random.default_rng(2)
  photos = _photos(rng, 4)
  clean = ImageSet(photos, ["a", "b", "c", "d"])
  noisy = ImageSet([photos[1][10:50, 10:60], photos[3], photos[0][:2, :2]],
                   ["crop of b", "d", "too small to find"])
  kept, dropped = overlap.drop_overlap(clean, noisy)
  assert dropped == ["b", "d"] and kept.names == ["a", "c"]
  assert kept.images[1] is photos[2]
  # A clean image that is a crop of a noisy one is dropped as well.
  kept, dropped = overlap.drop_overlap(ImageSet([photos[2][3:40, 4:50]], ["part of c"]),
                                       ImageSet([photos[2]], ["c"]))
  assert dropped == ["part of c"] and not kept.images
