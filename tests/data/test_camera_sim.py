"""The camera simulator: known noise level, correlated in space and across channels."""
import json
import os

import numpy as np
import pytest

from dbsn_jax.data import camera_sim, sources


def _photo():
  return sources.load("sample:astronaut", 3).images[0][:128, :160]


def test_noise_free_pipeline_reproduces_the_photo():
  """Without noise the mosaic -> demosaic -> colour matrix round trip is close to the
  input (bilinear demosaicking blurs only edges), so the truth is the photo's scene."""
  x = _photo()
  _, truth = camera_sim.simulate(x, 0.0, 0.0, np.random.default_rng(0))
  noisy, truth2 = camera_sim.simulate(x, 0.0, 0.0, np.random.default_rng(1))
  np.testing.assert_array_equal(noisy, truth2)
  err = np.abs(truth.astype(np.float64) / 255.0 - x).mean()
  assert err < 0.03, err


def test_level_grows_with_the_gains_and_follows_intensity():
  x = _photo()
  stds = [camera_sim.noise_std(*camera_sim.simulate(x, a, b, np.random.default_rng(0)))
          for a, b in [(0.001, 1e-5), (0.004, 4e-5), (0.01, 1e-4)]]
  assert stds[0] < stds[1] < stds[2], stds
  assert 4.0 < stds[0] < 30.0 and stds[2] < 40.0, stds

  # Shot noise: brighter pixels are noisier (flat grey fields at two levels).
  def field_std(v):
    flat = np.full((64, 64, 3), v)
    n, t = camera_sim.simulate(flat, 0.01, 1e-5, np.random.default_rng(2))
    return camera_sim.noise_std(n[8:-8, 8:-8], t[8:-8, 8:-8])
  assert field_std(0.7) > 1.5 * field_std(0.15)


def test_noise_is_correlated_in_space_and_across_channels_but_not_on_the_bayer_grid():
  flat = np.full((128, 128, 3), 0.4)
  n, t = camera_sim.simulate(flat, 0.005, 4e-5, np.random.default_rng(3))
  d = (n.astype(np.float64) - t)[4:-4, 4:-4]
  horizontal = np.corrcoef(d[:, :-1, 1].ravel(), d[:, 1:, 1].ravel())[0, 1]
  channels = np.corrcoef(d[..., 0].ravel(), d[..., 1].ravel())[0, 1]
  assert horizontal > 0.2 and abs(channels) > 0.2, (horizontal, channels)
  # Four pixels apart (one step on the 4x4 pixel-shuffled sub-images) it is white.
  far = np.corrcoef(d[:, :-4, 1].ravel(), d[:, 4:, 1].ravel())[0, 1]
  assert abs(far) < 0.05, far


def test_bad_input_is_refused():
  with pytest.raises(ValueError, match="RGB"):
    camera_sim.simulate(np.zeros((8, 8, 1)), 0.01, 0.0, np.random.default_rng(0))
  with pytest.raises(ValueError, match="a >= 0"):
    camera_sim.simulate(np.zeros((8, 8, 3)), -1.0, 0.0, np.random.default_rng(0))


def test_tool_writes_pairs_and_levels(tmp_path):
  levels = camera_sim.write_set("sample:coffee,chelsea", str(tmp_path), 0.004, 2e-5)
  assert sorted(levels) == ["chelsea", "coffee"]
  for sub in ("noisy", "clean"):
    assert sorted(os.listdir(tmp_path / sub)) == ["chelsea.png", "coffee.png"]
  noisy = sources.load(f"folder:{tmp_path}/noisy", 3)
  clean = sources.load(f"folder:{tmp_path}/clean", 3)
  for name, y, x in zip(noisy.names, noisy.images, clean.images):
    np.testing.assert_allclose(255.0 * np.std(y.astype(np.float64) - x), levels[name],
                               rtol=1e-3)
  saved = json.load(open(tmp_path / "noise_std.json"))
  assert saved["noise_std"] == pytest.approx(levels) and saved["a"] == 0.004
