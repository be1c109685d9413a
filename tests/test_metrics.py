"""PSNR and SSIM agree with scikit-image's implementations."""
import numpy as np
import pytest
from skimage import metrics as skm

from dbsn_jax import metrics


@pytest.mark.parametrize("c", [1, 3])
def test_psnr_and_ssim_match_skimage(c):
  rng = np.random.default_rng(c)
  clean = rng.random((64, 48, c)).astype(np.float32)
  pred = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
  ours = float(metrics.psnr(pred[None], clean[None])[0])
  assert abs(ours - skm.peak_signal_noise_ratio(clean, pred, data_range=1.0)) < 1e-4
  ref = skm.structural_similarity(clean, pred, data_range=1.0, channel_axis=-1,
                                  gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
  assert abs(float(metrics.ssim(pred[None], clean[None])[0]) - ref) < 1e-4


def test_psnr_clips_prediction():
  clean = np.full((1, 8, 8, 1), 1.0, np.float32)
  assert float(metrics.psnr(clean + 0.5, clean)[0]) > 150  # Clipped to exactly 1.


@pytest.mark.parametrize("c", [1, 3])
def test_unclipped_noisy_photo_matches_skimage_on_the_clipped_image(c):
  """The protocol's case: a real photo, Gaussian noise, prediction outside [0, 1]."""
  from dbsn_jax.data import sources
  clean = sources.load("sample:astronaut", c).images[0][100:228, 150:246]
  rng = np.random.default_rng(7)
  pred = (clean + rng.normal(0, 25 / 255, clean.shape)).astype(np.float32)
  assert pred.min() < 0 and pred.max() > 1
  clipped = np.clip(pred, 0, 1)
  ours = float(metrics.psnr(pred[None], clean[None])[0])
  assert abs(ours - skm.peak_signal_noise_ratio(clean, clipped, data_range=1.0)) < 1e-4
  ref = skm.structural_similarity(clean, clipped, data_range=1.0, channel_axis=-1,
                                  gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
  assert abs(float(metrics.ssim(pred[None], clean[None])[0]) - ref) < 1e-4
