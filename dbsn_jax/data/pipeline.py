"""grain input pipeline: random crops with the 8 dihedral augmentations, in batches.

Element i of the dataset is a pure function of (seed, i), so the pipeline is
deterministic for a seed and its iterator state (a position) checkpoints exactly.
Noise is not added here: the jitted train step adds it from its own PRNG key, so every
draw of a clean patch gets fresh noise.
"""
from typing import Dict, List, Optional, Sequence

import grain
import numpy as np

ENDLESS = 2**62  # Index range of the endless datasets.


def dihedral(patch: np.ndarray, k: int) -> np.ndarray:
  """The k-th (0..7) of the 8 flips/rotations/transposes of `(H, W, C)`."""
  if k >= 4:
    patch = np.swapaxes(patch, 0, 1)
  return np.rot90(patch, k % 4, axes=(0, 1))


def pad_to(img: np.ndarray, size: int) -> np.ndarray:
  """Reflect-pad an `(H, W, C)` image so both sides are at least `size`."""
  ph, pw = max(0, size - img.shape[0]), max(0, size - img.shape[1])
  if ph == 0 and pw == 0:
    return img
  return np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="symmetric")


class RandomPatch(grain.transforms.RandomMap):
  """Index -> {'image': (P, P, C) float32, 'image_id': int32} from a random image."""

  def __init__(self, images: List[np.ndarray], patch_size: int, augment: bool = True,
               image_ids: Optional[Sequence[int]] = None):
    self.images = [pad_to(im, patch_size) for im in images]
    # The id reported for image j (default j): e.g. the noise model of a sub-image.
    self.image_ids = list(range(len(images))) if image_ids is None else list(image_ids)
    self.patch_size = patch_size
    self.augment = augment

  def random_map(self, _, rng: np.random.Generator) -> Dict[str, np.ndarray]:
    j = int(rng.integers(len(self.images)))
    img, p = self.images[j], self.patch_size
    top = int(rng.integers(img.shape[0] - p + 1))
    left = int(rng.integers(img.shape[1] - p + 1))
    patch = img[top:top + p, left:left + p]
    if self.augment:
      patch = dihedral(patch, int(rng.integers(8)))
    return {"image": np.ascontiguousarray(patch, np.float32),
            "image_id": np.int32(self.image_ids[j])}


def train_dataset(images: List[np.ndarray], patch_size: int, batch_size: int,
                  seed: int, augment: bool = True,
                  image_ids: Optional[Sequence[int]] = None) -> grain.MapDataset:
  """Endless MapDataset of batches `{'image': (B, P, P, C), 'image_id': (B,)}`."""
  if not images:
    raise ValueError("the training set is empty")
  ds = grain.MapDataset.range(ENDLESS)
  ds = ds.random_map(RandomPatch(images, patch_size, augment, image_ids), seed=seed)
  return ds.batch(batch_size, drop_remainder=True)


def train_iterator(ds: grain.MapDataset, num_threads: int = 2):
  """A checkpointable iterator (get_state / set_state) with background prefetch."""
  return iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads,
                                                   prefetch_buffer_size=4)))
