"""Learning-free baselines: the BM3D columns and the levels they get on real pairs."""
import numpy as np
import pytest
from scipy import ndimage

from dbsn_jax import baselines


def test_bm3d_columns_per_noise_kind():
  assert baselines.bm3d_methods(False, ("true",)) == ["BM3D"]
  assert baselines.bm3d_methods(True, ("estimated", "true", "psd", "true")) == [
      baselines.BM3D_ESTIMATED, baselines.BM3D_TRUE, baselines.BM3D_PSD]
  with pytest.raises(ValueError, match="among estimated, true, psd, got oracle"):
    baselines.bm3d_methods(True, ("oracle",))


def test_true_noise_cov_is_each_channels_residual_variance():
  rng = np.random.default_rng(0)
  clean = rng.uniform(size=(20, 30, 3))
  noisy = clean + rng.normal(size=clean.shape) * [0.02, 0.05, 0.1]
  r = (noisy - clean).reshape(-1, 3)
  want = np.diag([np.mean((r[:, c] - r[:, c].mean()) ** 2) for c in range(3)])
  np.testing.assert_allclose(baselines.true_noise_cov(noisy, clean), want, rtol=1e-12)


@pytest.mark.parametrize("correlated", [False, True])
def test_true_noise_psd_matches_the_spectrum_of_known_noise(correlated):
  # Noise = white (std s) filtered by a known kernel g: its spectrum is s^2 |G|^2, and
  # the bm3d package wants it times H W (white: s^2 H W everywhere).
  rng = np.random.default_rng(1)
  h, w, s = 512, 384, 0.05
  g = np.array([[0.0, 0.5, 0.0], [0.5, 1.0, 0.5], [0.0, 0.5, 0.0]]) if correlated else (
      np.ones((1, 1)))
  g = g / np.sqrt(np.sum(g**2))  # Keeps the per-pixel variance at s^2.
  clean = rng.uniform(size=(h, w, 2))
  z = rng.normal(size=(h, w, 2)) * s
  noise = np.stack([ndimage.convolve(z[..., c], g, mode="wrap") for c in range(2)], -1)
  psd = baselines.true_noise_psd(clean + noise, clean)
  big = np.zeros((h, w))
  big[:g.shape[0], :g.shape[1]] = g
  want = s**2 * np.abs(np.fft.fft2(big)) ** 2 * h * w
  assert psd.shape == (h, w, 2)
  for c in range(2):
    # The total power is the variance; the shape within a few percent on average.
    np.testing.assert_allclose(psd[..., c].mean() / (h * w), s**2, rtol=0.03)
    rel = np.abs(psd[..., c] - want) / want.mean()
    assert rel.mean() < 0.05, rel.mean()  # Sampling error of 289 lags: ~0.03.


@pytest.mark.skipif(not baselines.bm3d_available(), reason="bm3d not installed")
def test_bm3d_given_the_noise_spectrum_beats_bm3d_given_its_std_on_correlated_noise():
  from skimage import data
  clean = data.astronaut()[100:228, 180:308].astype(np.float64) / 255
  rng = np.random.default_rng(2)
  g = np.ones((3, 3)) / 3.0  # Unit energy: per-pixel std stays 0.08.
  z = rng.normal(size=clean.shape) * 0.08
  noisy = clean + np.stack([ndimage.convolve(z[..., c], g, mode="wrap") for c in range(3)], -1)
  psnr = lambda v: -10 * np.log10(np.mean((np.clip(v, 0, 1) - clean) ** 2))  # noqa: E731
  white = baselines.bm3d_denoise(noisy, cov=baselines.true_noise_cov(noisy, clean))
  shaped = baselines.bm3d_denoise(noisy, psd=baselines.true_noise_psd(noisy, clean))
  assert psnr(shaped) > psnr(white) + 0.5 > psnr(noisy) + 0.5
