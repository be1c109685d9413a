"""Input pipeline: crops, dihedral group, determinism, exact resume."""
import numpy as np
import pytest

from dbsn_jax.data import input_pipeline


def test_dihedral_gives_eight_distinct_views():
  patch = np.arange(16, dtype=np.float32).reshape(4, 4, 1)
  views = {input_pipeline.dihedral(patch, k).tobytes() for k in range(8)}
  assert len(views) == 8


def test_batches_are_deterministic_and_resume_exactly():
  rng = np.random.default_rng(0)
  images = [rng.random((40, 50, 1), np.float32), rng.random((30, 30, 1), np.float32)]
  ds = input_pipeline.train_dataset(images, 16, 4, seed=3)
  it = input_pipeline.train_iterator(ds, 1)
  first = [next(it) for _ in range(3)]
  state = it.get_state()
  later = [next(it) for _ in range(2)]
  again = input_pipeline.train_iterator(input_pipeline.train_dataset(images, 16, 4, seed=3), 1)
  np.testing.assert_array_equal(next(again)["image"], first[0]["image"])
  again.set_state(state)
  for b in later:
    np.testing.assert_array_equal(next(again)["image"], b["image"])
  assert first[0]["image"].shape == (4, 16, 16, 1)
  other = next(input_pipeline.train_iterator(
      input_pipeline.train_dataset(images, 16, 4, seed=4), 1))
  assert not np.array_equal(other["image"], first[0]["image"])


def test_patches_come_from_the_named_image():
  images = [np.zeros((20, 20, 1), np.float32), np.ones((20, 20, 1), np.float32)]
  it = input_pipeline.train_iterator(input_pipeline.train_dataset(images, 8, 16, seed=0), 1)
  b = next(it)
  np.testing.assert_array_equal(b["image"].mean(axis=(1, 2, 3)), b["image_id"].astype(float))
  assert set(b["image_id"].tolist()) == {0, 1}


def test_small_images_are_padded():
  it = input_pipeline.train_iterator(
      input_pipeline.train_dataset([np.ones((5, 3, 1), np.float32)], 8, 2, seed=0), 1)
  assert next(it)["image"].shape == (2, 8, 8, 1)


def test_a_patch_beyond_every_image_is_refused_not_allocated():
  # data.patch_size=100000 once asked for 144 GB of mirror padding.
  images = [np.zeros((40, 60, 1), np.float32)] * 3
  with pytest.raises(ValueError, match="data.patch_size 100000 is larger than the training "
                     "images .*40x60"):
    input_pipeline.train_dataset(images, 100000, 2, seed=0)
  input_pipeline.train_dataset(images, 64, 2, seed=0)  # A patch a little beyond them is padded.
