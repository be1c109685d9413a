"""The Bayes step's options: the classical noise estimate as Sigma_n, and Sigma_mu's
per-image scale fitted to the residual (dbsn_jax/predict.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import data

from dbsn_jax import defaults, inference, losses, noise_estimate, predict
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


@pytest.mark.parametrize("level", ["estimated", "fitted"])
def test_per_image_noise_in_a_size_bucket_equals_the_exact_size(level):
  # The padded canvas's flat border must not pass for noise-free texture (the estimate:
  # only patches wholly inside the image count) nor enter the fit of the residual.
  config = tiny_stage1_config(**{"bayes.noise_level": level,
                                 "bayes.calibrate_prior": True})
  model = stage1.build_model(config)
  params = stage1.create_state(config, model).params
  d = inference.stage1_denoiser(config, model, params)
  y = jnp.asarray(_noisy_crops([25.0], 70, 1)[:, :61])
  np.testing.assert_allclose(d.run(y), d.apply_fn(params, y), atol=1e-5)
  cov = np.asarray(d.noise_cov(y))
  if level == "estimated":
    want = noise_estimate.white_noise_covariance(y[0])
  else:
    parts = predict.local_fn(model)(params, y)
    want = predict.finish_fn(model)(params, y, parts)["sigma_n"][0]
  np.testing.assert_allclose(cov, np.broadcast_to(want, cov.shape[1:])[None], rtol=1e-4,
                             atol=1e-9)


@pytest.mark.parametrize("field,value", [("noise_model.mode", "hetero"),
                                         ("realworld.downsample", 2)])
def test_the_estimate_is_refused_where_the_noise_is_not_white(field, value):
  config = tiny_stage1_config(**{"bayes.noise_level": "estimated", field: value})
  with pytest.raises(ValueError, match="bayes.noise_level='estimated'"):
    stage1.validate(config)
  with pytest.raises(ValueError, match="bayes.noise_level must be one of"):
    stage1.validate(tiny_stage1_config(**{"bayes.noise_level": "cnn"}))


def _irls_float64(r2, prior, mu, w, iterations=predict._FIT_ITERATIONS):
  """Independent float64 reference of `fitted_noise`'s fit for one image and channel:
  weighted least squares of r2 on [prior, 1, mu], reweighted by 1 / variance^2."""
  design = np.stack([prior, np.ones_like(mu), mu], -1)
  floor = predict._FIT_FLOOR * np.sum(w * r2) / np.sum(w)
  wt = w
  for _ in range(iterations + 1):
    coef = np.linalg.solve((design * wt[:, None]).T @ design, (design * wt[:, None]).T @ r2)
    wt = w / np.square(np.maximum(design @ coef, floor))
  return coef, floor


def test_fitted_noise_recovers_the_prior_scale_and_a_signal_dependent_level():
  """Residual = mu's error (variance t * Sigma_mu, Sigma_mu varying from flat to textured
  pixels) plus Poisson-Gaussian noise a + b x: the fit finds t, a and b, where CNN_est's
  level (here the residual's mean) would carry mu's error too."""
  rng = np.random.default_rng(3)
  b, h, w, c = 2, 96, 80, 3
  x = rng.uniform(0.1, 0.9, (b, h, w, c))
  texture = rng.uniform(0.0, 1.0, (b, h, w))
  prior_var = 1e-4 + 4e-3 * np.square(texture)                       # D-BSN's Sigma_mu, unscaled.
  t = np.array([0.5, 2.0])                                          # Its true scale per image.
  a, slope = np.array([4e-4, 1e-4, 2e-4]), np.array([2e-3, 4e-3, 0.0])
  mu = x + np.sqrt(t[:, None, None, None] * prior_var[..., None]) * rng.standard_normal(x.shape)
  y = x + np.sqrt(a + slope * x) * rng.standard_normal(x.shape)
  corr = np.array([[1.0, 0.5, 0.2], [0.5, 1.0, 0.3], [0.2, 0.3, 1.0]])
  sigma_mu = prior_var[..., None, None] * np.eye(c)
  sigma_n = np.broadcast_to(0.02 ** 2 * corr, (b, h, w, c, c))     # CNN_est: level off.
  valid = np.ones((b, h, w, 1))
  valid[1, :, :10] = 0.0
  y[1, :, :10] = 9.0  # Padding: must not count.
  f32 = [jnp.asarray(v, jnp.float32) for v in (y, mu, sigma_mu, sigma_n, valid)]
  prior, noise = (np.asarray(v, np.float64) for v in jax.jit(predict.fitted_noise)(*f32))
  for i in range(b):
    m = valid[i, ..., 0] > 0
    for ch in range(c):
      coef, floor = _irls_float64(np.square(y[i] - mu[i])[..., ch][m], prior_var[i][m],
                                  mu[i][..., ch][m], np.ones(m.sum()))
      np.testing.assert_allclose(prior[i][..., ch, ch][m] / prior_var[i][m],
                                 max(coef[0], 0.0), rtol=1e-3)
      want = np.maximum(coef[1] + coef[2] * mu[i][..., ch][m], floor)
      np.testing.assert_allclose(noise[i][..., ch, ch][m], want, rtol=1e-3, atol=1e-8)
      # ... and the fit lands near the truth: mu's error scale, and the noise level.
      np.testing.assert_allclose(coef[0], t[i], rtol=0.15)
      true_var = a[ch] + slope[ch] * x[i][..., ch][m]
      np.testing.assert_allclose(np.sqrt(want.mean()), np.sqrt(true_var.mean()), rtol=0.05)
    # CNN_est's channel correlation is kept.
    d = np.sqrt(np.diagonal(noise[i], axis1=-2, axis2=-1))
    np.testing.assert_allclose(noise[i] / (d[..., :, None] * d[..., None, :]),
                               np.broadcast_to(corr, noise[i].shape), rtol=1e-4)


def test_fitted_bayes_noise_is_reported_as_the_learned_level():
  config = tiny_stage1_config(**{"channels": 3, "noise_model.mode": "multivariate",
                                 "model.sigma_form": "full", "bayes.noise_level": "fitted"})
  model = stage1.build_model(config)
  params = stage1.create_state(config, model).params
  y = jnp.asarray(_noisy_crops([10.0, 40.0], 64, 3))
  parts = predict.local_fn(model)(params, y)
  out = jax.jit(predict.finish_fn(model))(params, y, parts)
  prior, noise = predict.fitted_noise(y, parts["mu"], parts["sigma_mu"],
                                      out["sigma_n_learned"])
  np.testing.assert_allclose(out["sigma_n"], noise, rtol=1e-5, atol=1e-9)
  assert predict.learned_noise(out) is out["sigma_n_fitted"]
  assert predict.cnn_est_noise(out) is out["sigma_n_learned"]  # Stage 2's own-image level.
  np.testing.assert_allclose(out["bayes"], losses.bayes_estimate(
      y, parts["mu"], prior, noise), atol=1e-5)


def test_build_denoiser_reads_the_activation_and_names_a_bad_one():
  """`denoiser.activation` reaches MWCNN; an unknown name, or one DnCNN does not have,
  fails naming the setting (not deep inside Flax at the first call)."""
  c = defaults.stage2()
  assert predict.build_denoiser(c).activation == "relu"
  c.denoiser.activation = "leaky_relu"
  assert predict.build_denoiser(c).activation == "leaky_relu"
  c.denoiser.arch = "dncnn"
  with pytest.raises(ValueError, match="denoiser.activation"):
    predict.build_denoiser(c)
  c.denoiser.arch, c.denoiser.activation = "mwcnn", "swish"
  with pytest.raises(ValueError, match="denoiser.activation"):
    predict.build_denoiser(c)
