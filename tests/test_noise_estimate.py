"""The classical white-noise estimate: accurate on textured images, for gray and
channel-correlated colour noise, and clear about images too small to measure."""
import numpy as np
import pytest
from skimage import data

from dbsn_jax import noise_estimate
from dbsn_jax.train import stage2


@pytest.fixture(scope="module")
def photo():
  return data.astronaut().astype(np.float64) / 255  # 512 x 512, textured.


@pytest.mark.parametrize("sigma", [5.0, 25.0, 50.0])
def test_awgn_level_of_a_textured_photo_within_three_percent(photo, sigma):
  rng = np.random.default_rng(int(sigma))
  y = photo[..., 0] + sigma / 255 * rng.standard_normal(photo.shape[:2])
  got = np.sqrt(noise_estimate.white_noise_variance(y)) * 255
  assert abs(got / sigma - 1) < 0.03, got


def test_channel_correlated_noise_covariance(photo):
  rng = np.random.default_rng(0)
  chol = np.array([[20.0, 0, 0], [12.0, 16.0, 0], [-6.0, 4.0, 10.0]]) / 255
  want = chol @ chol.T
  y = photo + rng.standard_normal(photo.shape) @ chol.T
  got = noise_estimate.white_noise_covariance(y)
  np.testing.assert_allclose(got, want, atol=0.05 * want.max())
  assert np.all(np.linalg.eigvalsh(got) >= 0)


def test_per_phase_levels_of_down_sampled_images(photo):
  """With down-sampling by 2, each sub-image phase gets its own level."""
  rng = np.random.default_rng(1)
  stds = np.array([[8.0, 16.0], [24.0, 32.0]]) / 255
  scale = np.tile(stds, (photo.shape[0] // 2, photo.shape[1] // 2))[..., None]
  y = photo + scale * rng.standard_normal(photo.shape)
  levels = stage2.estimated_levels([y, photo + 0.1 * rng.standard_normal(photo.shape)], 2)
  assert levels.shape == (2, 2, 2, 3, 3) and levels.dtype == np.float32
  got = np.sqrt(np.diagonal(levels[0], axis1=-2, axis2=-1))  # (2, 2, 3)
  np.testing.assert_allclose(got, np.broadcast_to(stds[..., None], got.shape), rtol=0.05)
  np.testing.assert_allclose(np.sqrt(np.diagonal(levels[1], axis1=-2, axis2=-1)), 0.1,
                             rtol=0.05)


def test_bad_images_are_named():
  with pytest.raises(ValueError, match="too small to estimate its noise level"):
    noise_estimate.white_noise_variance(np.zeros((4, 4)))
  with pytest.raises(ValueError, match=r"one \(H, W\) channel"):
    noise_estimate.white_noise_variance(np.zeros((16, 16, 3)))
