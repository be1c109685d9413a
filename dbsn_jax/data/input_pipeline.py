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


def check_patch_size(images: List[np.ndarray], patch_size: int, floor: float = 2**30):
  """Refuse a patch whose mirror padding would blow up memory (a 100,000-pixel patch
  once asked for 144 GB): more than `floor` bytes and 4x the images themselves.
  Padding a few images smaller than a patch is fine."""
  if not images:
    return
  own = sum(im.size * 4 for im in images)
  padded = sum(max(im.shape[0], patch_size) * max(im.shape[1], patch_size)
               * im[0, 0].size * 4 for im in images)
  if padded > max(floor, 4 * own):
    big = max(images, key=lambda im: im.shape[0] * im.shape[1])
    raise ValueError(f"data.patch_size {patch_size} is larger than the training images "
                     f"(the largest is {big.shape[0]}x{big.shape[1]}; real photos train on "
                     "sub-images of 1/realworld.downsample that size): padding them to it "
                     f"would take {padded / 2**30:.1f} GiB; lower data.patch_size")


class RandomPatch(grain.transforms.RandomMap):
  """Index -> {'image': (P, P, C) float32, 'image_id': int32} from a random image."""

  def __init__(self, images: List[np.ndarray], patch_size: int, augment: bool = True,
               image_ids: Optional[Sequence[int]] = None):
    check_patch_size(images, patch_size)
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
