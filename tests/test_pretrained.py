"""The bundled models load offline by name and really denoise."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dbsn_jax import denoise, inference, metrics, prng
from dbsn_jax.data import sources

NAMES = inference.pretrained_names()


def test_bundled_models_are_present():
  assert "gray-awgn25" in NAMES and "color-awgn" in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_bundled_model_denoises(name):
  d = inference.load_denoiser(name)
  x = sources.load("sample:camera", d.channels).images[0][128:288, 128:288]
  sigma = 25 / 255
  y = x + sigma * np.asarray(prng.normal(jax.random.PRNGKey(0), x.shape))
  gain = float(metrics.psnr(jnp.asarray(d(y.astype(np.float32)))[None], x[None])[0]
               - metrics.psnr(jnp.asarray(y)[None], x[None])[0])
  assert gain > 4.0, f"{name} improved PSNR by only {gain:.2f} dB"


def test_one_line_denoise_keeps_uint8():
  img = (sources.load("sample:camera", 1).images[0][:64, :96, 0] * 255).astype(np.uint8)
  out = denoise(img, model="gray-awgn25")
  assert out.dtype == np.uint8 and out.shape == img.shape
