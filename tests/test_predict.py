"""The Bayes step's options: the classical noise estimate as Sigma_n, and Sigma_mu's
per-image scale fitted to the residual (dbsn_jax/predict.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import data

from dbsn_jax import inference, losses, noise_estimate, predict
from dbsn_jax.train import stage1
from tests.conftest import tiny_stage1_config


def _spd(rng, shape, c):
  a = rng.normal(size=shape + (c, c)) * 0.05
  return a @ np.swapaxes(a, -1, -2) + 1e-3 * np.eye(c)


def test_calibrated_prior_matches_the_residual_second_moment():
  rng = np.random.default_rng(0)
  b, h, w, c = 2, 12, 10, 3
  y, mu = rng.uniform(size=(2, b, h, w, c))
  sigma_mu = _spd(rng, (b, h, w), c)
  sigma_n = np.broadcast_to(_spd(rng, (b, 1, 1), c) * 0.1, sigma_mu.shape)
  valid = np.ones((b, h, w, 1))
  valid[1, :, :4] = 0.0
  y[1, :, :4] = 50.0  # Padding: must not count.
  got = np.asarray(predict.calibrated_prior(*(jnp.asarray(a, jnp.float32) for a in
                                              (y, mu, sigma_mu, sigma_n, valid))), np.float64)
  for i in range(b):
    m = valid[i, ..., 0] > 0
    residual = np.mean(np.square(y[i] - mu[i])[m])
    total = np.mean(np.diagonal(got[i] + sigma_n[i], axis1=-2, axis2=-1)[m])
    np.testing.assert_allclose(total, residual, rtol=1e-5)
    ratio = got[i] / sigma_mu[i]
    np.testing.assert_allclose(ratio, ratio.flat[0], rtol=1e-4)  # One scale per image.
    assert ratio.flat[0] > 0


def test_calibrated_prior_vanishes_when_mu_fits_y_closer_than_the_noise():
  rng = np.random.default_rng(1)
  mu = rng.uniform(size=(1, 8, 8, 1)).astype(np.float32)
  y = mu + 1e-3
  sigma_mu = np.full((1, 8, 8, 1, 1), 0.01, np.float32)
  sigma_n = np.full((1, 8, 8, 1, 1), 0.01, np.float32)
  prior = predict.calibrated_prior(y, mu, sigma_mu, sigma_n)
  assert float(jnp.abs(prior).max()) == 0.0
  np.testing.assert_allclose(losses.bayes_estimate(y, mu, prior, sigma_n), mu, atol=1e-7)


def _noisy_crops(sigmas, size, channels):
  photo = data.astronaut().astype(np.float32) / 255
  rng = np.random.default_rng(2)
  crops = [photo[40 * i:40 * i + size, 60:60 + size, :channels] for i in range(len(sigmas))]
  return np.stack([x + s / 255 * rng.standard_normal(x.shape).astype(np.float32)
                   for x, s in zip(crops, sigmas)])


def test_estimated_bayes_noise_is_each_image_classical_estimate():
  config = tiny_stage1_config(**{"channels": 3, "noise_model.mode": "multivariate",
                                 "bayes.noise_level": "estimated",
                                 "bayes.calibrate_prior": True})
  model = stage1.build_model(config)
  params = stage1.create_state(config, model).params
  y = jnp.asarray(_noisy_crops([10.0, 40.0], 96, 3))
  parts = predict.local_fn(model)(params, y)
  out = jax.jit(predict.finish_fn(model))(params, y, parts)
  stds = []
  for i in range(2):
    want = np.asarray(noise_estimate.white_noise_covariance(y[i]))
    np.testing.assert_allclose(out["sigma_n"][i], np.broadcast_to(want, (96, 96, 3, 3)),
                               rtol=1e-4, atol=1e-8)
    stds.append(255 * np.sqrt(np.diag(want).mean()))
  np.testing.assert_allclose(stds, [10.0, 40.0], rtol=0.2)
  # CNN_est's own level is still reported, and the Bayes step used the estimate.
  assert predict.learned_noise(out) is out["sigma_n_learned"]
  prior = predict.calibrated_prior(y, parts["mu"], parts["sigma_mu"], out["sigma_n"])
  np.testing.assert_allclose(out["bayes"], losses.bayes_estimate(
      y, parts["mu"], prior, out["sigma_n"]), atol=1e-5)


def test_estimated_noise_in_a_size_bucket_equals_the_exact_size():
  # The padded canvas's flat border must not pass for noise-free texture: only patches
  # wholly inside the image count.
  config = tiny_stage1_config(**{"bayes.noise_level": "estimated",
                                 "bayes.calibrate_prior": True})
  model = stage1.build_model(config)
  params = stage1.create_state(config, model).params
  d = inference.stage1_denoiser(config, model, params)
  y = jnp.asarray(_noisy_crops([25.0], 70, 1)[:, :61])
  np.testing.assert_allclose(d.run(y), d.apply_fn(params, y), atol=1e-5)
  cov = np.asarray(d.noise_cov(y))
  np.testing.assert_allclose(cov, np.broadcast_to(
      noise_estimate.white_noise_covariance(y[0]), cov.shape[1:])[None], rtol=1e-4)


@pytest.mark.parametrize("field,value", [("noise_model.mode", "hetero"),
                                         ("realworld.downsample", 2)])
def test_the_estimate_is_refused_where_the_noise_is_not_white(field, value):
  config = tiny_stage1_config(**{"bayes.noise_level": "estimated", field: value})
  with pytest.raises(ValueError, match="bayes.noise_level='estimated'"):
    stage1.validate(config)
  with pytest.raises(ValueError, match="bayes.noise_level must be one of"):
    stage1.validate(tiny_stage1_config(**{"bayes.noise_level": "cnn"}))
