"""Stage-2 batches: clean patches (for synthetic pairs) mixed with real noisy patches.

One element is a whole batch `{'clean': (Bs, P, P, C), 'real': (Br, P+2m, P+2m, C),
'real_id': (Br,)}`; real patches carry a margin m of context so the stage-1 target
computed on them is free of border effects in the central P x P.
"""
from typing import Dict, List

import grain
import numpy as np

from dbsn_jax.data.input_pipeline import ENDLESS, RandomPatch


class MixedBatch(grain.transforms.RandomMap):
  """Index -> one mixed batch, a pure function of the element's generator."""

  def __init__(self, clean: List[np.ndarray], real: List[np.ndarray], patch_size: int,
               margin: int, num_clean: int, num_real: int, augment: bool = True):
    self.clean = RandomPatch(clean, patch_size, augment) if num_clean else None
    self.real = RandomPatch(real, patch_size + 2 * margin, augment) if num_real else None
    self.num_clean, self.num_real = num_clean, num_real
    self.patch_size, self.margin = patch_size, margin

  def random_map(self, _, rng: np.random.Generator) -> Dict[str, np.ndarray]:
    clean = [self.clean.random_map(None, rng) for _ in range(self.num_clean)]
    real = [self.real.random_map(None, rng) for _ in range(self.num_real)]
    p, c = self.patch_size, (self.clean or self.real).images[0].shape[-1]
    q = p + 2 * self.margin
    return {
        "clean": np.stack([e["image"] for e in clean]) if clean
        else np.zeros((0, p, p, c), np.float32),
        "real": np.stack([e["image"] for e in real]) if real
        else np.zeros((0, q, q, c), np.float32),
        "real_id": np.array([e["image_id"] for e in real], np.int32),
    }


def split_batch(batch_size: int, real_fraction: float):
  """(clean count, real count) of a batch; the real share rounds to nearest."""
  if not 0.0 <= real_fraction <= 1.0:
    raise ValueError(f"data.real_fraction must be in [0, 1], got {real_fraction}")
  num_real = int(round(batch_size * real_fraction))
  return batch_size - num_real, num_real


def mixed_dataset(clean, real, patch_size, margin, batch_size, real_fraction, seed,
                  augment=True) -> grain.MapDataset:
  """Endless MapDataset of mixed stage-2 batches (deterministic for a seed)."""
  num_clean, num_real = split_batch(batch_size, real_fraction)
  fn = MixedBatch(clean, real, patch_size, margin, num_clean, num_real, augment)
  return grain.MapDataset.range(ENDLESS).random_map(fn, seed=seed)
