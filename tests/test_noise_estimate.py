"""The classical white-noise estimate: accurate on textured images, for gray and
channel-correlated colour noise, and clear about images too small to measure."""
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import data

from dbsn_jax import linalg, noise_estimate, predict


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


def test_channel_variances_are_the_covariance_diagonal_in_a_padded_canvas(photo):
  """The level-only path (a `level_input` denoiser's test-time estimate) reads what the
  covariance's diagonal reads, also over a masked canvas; and `predict.noise_std` is its
  root mean."""
  rng = np.random.default_rng(5)
  y = photo[:120, :100] + rng.standard_normal((120, 100, 3)) * np.array([8.0, 20.0, 35.0]) / 255
  canvas, valid = np.zeros((128, 128, 3)), np.zeros((128, 128))
  canvas[:120, :100], valid[:120, :100] = y, 1.0
  want = np.diag(np.asarray(noise_estimate.white_noise_covariance(y)))
  np.testing.assert_allclose(noise_estimate.white_noise_variances(y), want, rtol=1e-4)
  np.testing.assert_allclose(noise_estimate.white_noise_variances(canvas, valid=valid), want,
                             rtol=1e-4)
  std = predict.noise_std(jnp.asarray(canvas[None], jnp.float32),
                          jnp.asarray(valid[None, ..., None], jnp.float32))
  np.testing.assert_allclose(std, [np.sqrt(want.mean())], rtol=1e-4)
  assert np.all(np.abs(np.sqrt(want) * 255 / [8.0, 20.0, 35.0] - 1) < 0.15)


def test_fully_correlated_channels_give_a_positive_definite_covariance(photo):
  """One noise in every channel (rank 1): the pairwise estimates overshoot a correlation
  of 1, and the result must still factorise, as stage 2's synthesis needs."""
  rng = np.random.default_rng(3)  # A draw whose clipped estimate was singular.
  y = photo + 10 / 255 * rng.standard_normal(photo.shape[:2])[..., None]
  got = np.asarray(noise_estimate.white_noise_covariance(y), np.float64)
  vals = np.linalg.eigvalsh(got)
  assert vals.min() >= 0.9e-3 * vals.max() > 0
  np.testing.assert_allclose(np.diag(got), (10 / 255) ** 2, rtol=0.1)
  assert np.isfinite(np.asarray(linalg.cholesky(jnp.asarray(got, jnp.float32)))).all()


def test_bad_images_are_named():
  with pytest.raises(ValueError, match="too small to estimate its noise level"):
    noise_estimate.white_noise_variance(np.zeros((4, 4)))
  with pytest.raises(ValueError, match=r"one \(H, W\) channel"):
    noise_estimate.white_noise_variance(np.zeros((16, 16, 3)))


def test_a_padded_canvas_with_its_mask_gives_the_image_own_level(photo):
  rng = np.random.default_rng(3)
  y = photo[:90, :75, 1] + 20 / 255 * rng.standard_normal((90, 75))
  canvas = np.zeros((96, 96))
  canvas[:90, :75] = y
  valid = np.zeros((96, 96))
  valid[:90, :75] = 1.0
  alone = float(noise_estimate.white_noise_variance(y))
  np.testing.assert_allclose(noise_estimate.white_noise_variance(canvas, valid=valid), alone,
                             rtol=1e-4)
  # Without the mask the flat border reads as noise-free patches and pulls the level down.
  assert float(noise_estimate.white_noise_variance(canvas)) < 0.9 * alone
