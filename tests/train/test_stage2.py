"""Stage 2: learned-noise synthesis, Eq. 4, batch mixing, checkpoint hand-off checks."""
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import data as skimage_data

from dbsn_jax import defaults, inference, realworld
from dbsn_jax.data import mixed, sources
from dbsn_jax.train import stage1, stage2
from dbsn_jax.train import state as state_lib
from tests.conftest import apply_overrides, build_once, perturbed, tiny_stage1_config


def _train_stage1_dirs(folder):
  dirs = {}
  for name, per_image in (("shared", False), ("per_image", True)):
    wd = str(folder / name)
    stage1.train_and_evaluate(tiny_stage1_config(**{
        "train.num_steps": 2, "noise_model.per_image": per_image,
        "noise_model.mode": "hetero"}), wd)
    dirs[name] = wd
  return dirs


@pytest.fixture(scope="module")
def stage1_dirs(tmp_path_factory):
  return build_once(tmp_path_factory, "stage2_stage1_dirs", _train_stage1_dirs)


def tiny_stage2_config(stage1_workdir, **overrides):
  c = defaults.stage2()
  c.stage1_workdir = stage1_workdir
  c.denoiser.arch = "dncnn"
  c.denoiser.features, c.denoiser.depth = 8, 4
  c.data.clean = "sample:coffee,rocket"
  c.data.clean_start = 0
  c.data.patch_size, c.data.batch_size, c.data.target_margin = 16, 8, 4
  c.data.num_threads = 1
  c.train.num_steps, c.train.log_every, c.train.checkpoint_every = 3, 1, 3
  c.eval.every_steps = 100
  return apply_overrides(c, overrides)


def _perturbed(params, seed=0):
  return {**params, "noise_model": perturbed(params["noise_model"], seed, 0.5)}


@pytest.mark.parametrize("kind", ["shared", "per_image"])
def test_synthesised_noise_has_the_learned_variance(stage1_dirs, kind):
  cfg, model, params = stage1.load(stage1_dirs[kind])
  params = _perturbed(params)
  num = model.noise_model.num_models
  x = jnp.full((6, 96, 96, 1), 0.4)
  # Per image with s = 1: the empirical variance is the model's.
  y, cov = stage2.synthesize(jax.random.PRNGKey(1), x, model, params, num, (1.0, 1.0))
  emp = np.var(np.asarray(y - x), axis=(1, 2, 3))
  np.testing.assert_allclose(emp, np.asarray(cov[:, 0, 0, 0, 0]), rtol=0.05)
  # Pooled with s ~ U(0.9, 1.1): E[s^2] = 1 + 0.2^2 / 12.
  x = jnp.full((64, 32, 32, 1), 0.4)
  y, cov = stage2.synthesize(jax.random.PRNGKey(2), x, model, params, num, (0.9, 1.1))
  np.testing.assert_allclose(np.mean(np.square(y - x)),
                             np.mean(cov[..., 0, 0]) * (1 + 0.04 / 12), rtol=0.05)
  if num:
    assert emp.max() > 1.2 * emp.min()  # Different images' models were drawn.


def test_awgn_models_synthesise_their_own_image_level_whatever_the_patch(stage1_dirs):
  s1_config, _, params = stage1.load(stage1_dirs["per_image"])
  s1_config.noise_model.mode = "awgn"  # Same parameter shapes as the fixture's hetero.
  clean = sources.load(s1_config.data.train, 1, s1_config.data.train_start, None).images
  model = stage1.build_model(s1_config, len(clean))
  params = _perturbed(params, seed=3)
  noisy = stage2.fixed_noisy_images(clean, s1_config, seed=0)
  _, levels = stage2.stage1_on_images(noisy, s1_config, model, params)
  assert levels.shape == (len(clean), 1, 1, 1, 1)
  denoise = stage1.make_denoise_fn(model, realworld.settings(s1_config))
  for i, y in enumerate(noisy):  # Level i: model i's Sigma_n on its own image.
    want = denoise(params, jnp.asarray(y)[None], jnp.array([i], jnp.int32))["sigma_n"]
    np.testing.assert_allclose(levels[i, 0, 0], want[0, 0, 0], rtol=1e-5)
  # Still CNN_est's level when the Bayes step uses the classical estimate instead.
  _, levels_est = stage2.stage1_on_images(noisy, s1_config,
                                          model.clone(bayes_noise="estimated"), params)
  np.testing.assert_array_equal(levels_est, levels)
  dark, bright = jnp.full((16, 24, 24, 1), 0.05), jnp.full((16, 24, 24, 1), 0.95)
  key, num = jax.random.PRNGKey(4), len(clean)
  own = [stage2.synthesize(key, x, model, params, num, (1.0, 1.0), levels=jnp.asarray(levels))[1]
         for x in (dark, bright)]
  np.testing.assert_array_equal(own[0], own[1])  # Content-independent ...
  assert {float(v) for v in own[0][:, 0, 0, 0, 0]} <= {float(v) for v in levels.ravel()}
  patch = [stage2.synthesize(key, x, model, params, num, (1.0, 1.0))[1] for x in (dark, bright)]
  assert not np.allclose(patch[0], patch[1], rtol=0.05)  # ... as CNN_est on a patch is not.
  config = tiny_stage2_config(stage1_dirs["per_image"])
  assert stage2.level_source(config, s1_config) == "own_image"  # Default, averaged modes.
  config.distill.noise_levels = "patch"
  assert stage2.level_source(config, s1_config) is None
  config.distill.noise_levels = "estimated"
  s1_config.noise_model.mode = "hetero"  # Per-pixel levels come from the clean patch.
  assert stage2.level_source(config, s1_config) is None
  s1_config.noise_model.mode = "awgn"
  config.distill.noise_levels = "own"
  with pytest.raises(ValueError, match="distill.noise_levels must be one of"):
    stage2.validate(config, s1_config)


def test_fitted_levels_are_the_fitted_bayes_steps_own_image_level(stage1_dirs):
  """distill.noise_levels='fitted': image i's level is the mean of the Sigma_n that the
  'fitted' Bayes step found on it, not CNN_est's; a stage 1 without that step is refused."""
  s1_config, _, params = stage1.load(stage1_dirs["per_image"])
  s1_config.noise_model.mode = "awgn"
  clean = sources.load(s1_config.data.train, 1, s1_config.data.train_start, None).images
  model = stage1.build_model(s1_config, len(clean)).clone(bayes_noise="fitted")
  params = _perturbed(params, seed=3)
  noisy = stage2.fixed_noisy_images(clean, s1_config, seed=0)
  _, fitted = stage2.stage1_on_images(noisy, s1_config, model, params, fitted=True)
  _, own = stage2.stage1_on_images(noisy, s1_config, model, params)
  denoise = stage1.make_denoise_fn(model, realworld.settings(s1_config))
  for i, y in enumerate(noisy):
    out = denoise(params, jnp.asarray(y)[None], jnp.array([i], jnp.int32))
    np.testing.assert_allclose(fitted[i, 0, 0], np.mean(out["sigma_n_fitted"][0], (0, 1)),
                               rtol=1e-5)
    np.testing.assert_allclose(own[i, 0, 0], out["sigma_n_learned"][0, 0, 0], rtol=1e-5)
  assert not np.allclose(fitted, own, rtol=0.05)
  config = tiny_stage2_config(stage1_dirs["per_image"])
  config.distill.noise_levels = "fitted"
  assert stage2.level_source(config, s1_config) == "fitted"
  s1_config.bayes.noise_level = "learned"
  with pytest.raises(ValueError, match="bayes.noise_level='fitted'"):
    stage2.validate(config, s1_config)
  s1_config.bayes.noise_level = "fitted"
  stage2.validate(config, s1_config)


def test_phase_means_average_each_sub_image():
  sigma = np.random.default_rng(0).random((6, 8, 2, 2))
  got = stage2.phase_means(sigma, 2)
  assert got.shape == (2, 2, 2, 2)
  np.testing.assert_allclose(got[1, 0], sigma[1::2, 0::2].reshape(-1, 2, 2).mean(0))
  np.testing.assert_allclose(stage2.phase_means(sigma, 1)[0, 0], sigma.mean((0, 1)))


def test_estimated_levels_are_per_image_and_per_down_sampling_phase():
  """With down-sampling by 2, each sub-image phase gets its own level."""
  photo = skimage_data.astronaut().astype(np.float64) / 255  # 512 x 512, textured.
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


def test_pooled_level_is_the_median_images_own_positive_definite_covariance():
  rng = np.random.default_rng(0)
  gray = (np.array([30.0, 22.0, 25.0, 27.0, 24.0]) / 255) ** 2
  pooled = stage2.pooled_level(gray.reshape(5, 1, 1, 1, 1))
  assert pooled.shape == (1, 1, 1, 1, 1)
  np.testing.assert_allclose(np.sqrt(pooled) * 255, 25.0, rtol=1e-6)
  # Color, down-sampled by 2: one image's whole (f, f, C, C) block, never a mix.
  a = rng.normal(size=(7, 2, 2, 3, 3))
  covs = np.einsum("nabij,nabkj->nabik", a, a) + 0.1 * np.eye(3)
  pooled = stage2.pooled_level(covs)[0]
  trace = np.trace(covs, axis1=-2, axis2=-1).sum(axis=(1, 2))
  np.testing.assert_array_equal(pooled, covs[np.argsort(trace)[3]])
  assert np.all(np.linalg.eigvalsh(pooled) > 0)


def test_distillation_loss_matches_numpy():
  rng = np.random.default_rng(0)
  a, x = rng.random((7, 8, 8, 1)), rng.random((7, 8, 8, 1))
  b, t = rng.random((1, 8, 8, 1)), rng.random((1, 8, 8, 1))
  expect = (np.sum((a - x) ** 2) + 0.1 * np.sum((b - t) ** 2)) / (8 * 64)
  np.testing.assert_allclose(stage2.distill_loss(a, x, b, t, 0.1), expect, rtol=1e-6)
  # The reference's weighting: lam on the real pairs' mean, whatever their share.
  means = np.mean((a - x) ** 2) + 0.1 * np.mean((b - t) ** 2)
  np.testing.assert_allclose(stage2.distill_loss(a, x, b, t, 0.1, "means"), means, rtol=1e-6)
  np.testing.assert_allclose(stage2.distill_loss(a, x, b[:0], t[:0], 0.1, "means"),
                             np.mean((a - x) ** 2), rtol=1e-6)


def test_batch_mixing_ratio():
  rng = np.random.default_rng(0)
  images = [rng.random((40, 40, 1), np.float32)]
  ds = mixed.mixed_dataset(images, images, 16, 4, 32, 1 / 8, seed=0)
  b = ds[0]
  assert b["clean"].shape == (28, 16, 16, 1) and b["real"].shape == (4, 24, 24, 1)
  assert mixed.split_batch(8, 0.0) == (8, 0) and mixed.split_batch(8, 1.0) == (0, 8)
  with pytest.raises(ValueError, match="real_fraction"):
    mixed.split_batch(8, 1.5)


@pytest.mark.parametrize("real_targets", ["fresh", "fixed"])
def test_short_distillation_runs(stage1_dirs, tmp_path, real_targets):
  config = tiny_stage2_config(stage1_dirs["per_image"], **{"distill.real_targets": real_targets})
  out = stage2.train_and_evaluate(config, str(tmp_path))
  assert int(out["state"].step) == 3
  assert np.isfinite(out["eval"]["psnr_stage2"])
  assert jax.tree.leaves(out["state"].batch_stats)  # DnCNN statistics are carried.


def test_no_real_patches_no_teacher_pass(stage1_dirs, tmp_path, monkeypatch):
  """`data.real_fraction = 0`: the fixed stage-1 targets would never be read, so the
  teacher is not run over the training images."""
  def refuse(*args, **kwargs):
    raise AssertionError("stage1_on_images ran for a batch with no real patches")
  monkeypatch.setattr(stage2, "stage1_on_images", refuse)
  config = tiny_stage2_config(stage1_dirs["shared"], **{"data.real_fraction": 0.0})
  out = stage2.train_and_evaluate(config, str(tmp_path))
  assert int(out["state"].step) == 3 and np.isfinite(out["eval"]["psnr_stage2"])


def test_fixed_real_pairs_are_one_noise_draw_beside_its_stage1_target(stage1_dirs):
  s1_config, s1_model, s1_params = stage1.load(stage1_dirs["per_image"])
  clean = sources.load(s1_config.data.train, 1, s1_config.data.train_start, None).images
  noisy = stage2.fixed_noisy_images(clean, s1_config, seed=0)
  again = stage2.fixed_noisy_images(clean, s1_config, seed=0)
  other = stage2.fixed_noisy_images(clean, s1_config, seed=1)
  for y, y_again, y_other, x in zip(noisy, again, other, clean):
    np.testing.assert_array_equal(y, y_again)  # The fixed set is a function of the seed.
    assert not np.array_equal(y, y_other)
    np.testing.assert_allclose(np.std(y - x), s1_config.noise.sigma / 255, rtol=0.03)
  pairs = stage2.real_pairs(noisy, s1_config, s1_model, s1_params)
  target = jax.jit(stage2.stage1_target_fn(s1_config, s1_model))
  for i, (pair, y) in enumerate(zip(pairs, noisy)):
    np.testing.assert_array_equal(pair[..., :1], y)
    expect = target(s1_params, jnp.asarray(y)[None], jnp.array([i], jnp.int32))[0]
    np.testing.assert_allclose(pair[..., 1:], expect, atol=1e-6)  # Image i's own model.
  config = tiny_stage2_config(stage1_dirs["per_image"])
  assert stage2.fixed_pairs(config, s1_config)  # The default.
  config.distill.real_targets = "fresh"
  assert not stage2.fixed_pairs(config, s1_config)


def test_mismatched_checkpoints_are_refused(stage1_dirs, tmp_path):
  with pytest.raises(ValueError, match="channels=1 but the stage-2 config has channels=3"):
    stage2.train_and_evaluate(tiny_stage2_config(stage1_dirs["shared"], channels=3),
                              str(tmp_path / "a"))
  stage2.train_and_evaluate(tiny_stage2_config(stage1_dirs["shared"]), str(tmp_path / "s2"))
  with pytest.raises(ValueError, match="holds a 'stage2' checkpoint, expected a 'stage1'"):
    stage2.train_and_evaluate(tiny_stage2_config(str(tmp_path / "s2")), str(tmp_path / "b"))
  with pytest.raises(FileNotFoundError, match="no checkpoints"):
    stage2.train_and_evaluate(tiny_stage2_config(str(tmp_path / "nope")), str(tmp_path / "c"))


@pytest.mark.parametrize("field,value,match", [
    ("distill.lam", -0.1, "distill.lam"),
    ("denoiser.arch", "unet", "denoiser.arch"),
    ("data.real_fraction", 2.0, "data.real_fraction"),
    ("distill.real_targets", "stale", "distill.real_targets"),
])
def test_bad_stage2_settings_are_named(stage1_dirs, tmp_path, field, value, match):
  with pytest.raises(ValueError, match=match):
    stage2.train_and_evaluate(tiny_stage2_config(stage1_dirs["shared"], **{field: value}),
                              str(tmp_path))


@pytest.mark.parametrize("widths,patch,multiple", [((8, 8, 8), 20, 8), ((8, 8, 8, 8), 24, 16)])
def test_mwcnn_patch_must_divide_by_two_per_level(stage1_dirs, tmp_path, widths, patch,
                                                   multiple):
  config = tiny_stage2_config(stage1_dirs["shared"], **{"denoiser.arch": "mwcnn",
                                                        "denoiser.widths": widths,
                                                        "data.patch_size": patch})
  with pytest.raises(ValueError, match=f"multiple of {multiple} for MWCNN with "
                                       f"{len(widths)} levels"):
    stage2.train_and_evaluate(config, str(tmp_path))


def test_ema_weights_are_evaluated_exported_and_resumed(stage1_dirs, tmp_path):
  wd = str(tmp_path / "ema")
  config = tiny_stage2_config(stage1_dirs["shared"], **{"optim.ema_decay": 0.5})
  out = stage2.train_and_evaluate(config, wd)
  assert {"psnr_stage2", "psnr_stage2_raw"} <= set(out["eval"])
  state = out["state"]
  ema, raw = jax.tree.leaves(state_lib.ema_params(state)), jax.tree.leaves(state.params)
  assert any(not np.allclose(e, r) for e, r in zip(ema, raw))
  loaded = jax.tree.leaves(inference.from_workdir(wd).params["params"])
  for a, b in zip(loaded, ema):  # The denoiser of a workdir uses the average.
    np.testing.assert_array_equal(a, b)
  # Resuming with the average off would drop it silently: refused, naming it.
  with pytest.raises(ValueError, match="different ema"):
    stage2.train_and_evaluate(tiny_stage2_config(stage1_dirs["shared"], **{
        "train.num_steps": 6}), wd)


def test_a_clipped_run_resumes_clipped_and_refuses_to_resume_unclipped(stage1_dirs, tmp_path,
                                                                      caplog):
  wd = str(tmp_path / "clip")
  first = stage2.train_and_evaluate(tiny_stage2_config(stage1_dirs["shared"], **{
      "optim.clip_norm": 1e-3}), wd)
  steps = int(first["state"].step) + 2
  with pytest.raises(ValueError, match="different gradient clipping"):
    stage2.train_and_evaluate(tiny_stage2_config(stage1_dirs["shared"], **{
        "train.num_steps": steps}), wd)
  with caplog.at_level(logging.INFO):  # Another threshold: the same state structure.
    more = stage2.train_and_evaluate(tiny_stage2_config(stage1_dirs["shared"], **{
        "optim.clip_norm": 2e-3, "train.num_steps": steps}), wd)
  assert f"resumed from step {steps - 2}" in caplog.text
  assert int(more["state"].step) == steps


def test_clean_set_equal_to_the_noisy_set_is_refused_by_name(stage1_dirs, tmp_path):
  """Unpaired learning: the clean images must not be stage 1's noisy ones."""
  saved = stage1.load(stage1_dirs["shared"])[0]
  config = tiny_stage2_config(stage1_dirs["shared"], **{"data.clean": saved.data.train})
  with pytest.raises(ValueError, match=r"every clean image of stage2.data.clean="
                                       r"'sample:astronaut,coins,brick' shows a scene"):
    stage2.train_and_evaluate(config, str(tmp_path / "s2"))
  kept = stage2.disjoint_clean(sources.load("sample:coins,camera", 1),
                               sources.load(saved.data.train, 1), config)
  assert kept.names == ["camera"]


def test_synthetic_stds_are_the_drawn_noises_std():
  """What a `level_input` network is told on a synthetic patch, s times its model's std,
  is the std of the noise `synthesize` drew there (channel variances unequal, s random)."""
  levels = np.zeros((3, 1, 1, 3, 3), np.float32)
  for i, var in enumerate(([1.0, 4.0, 9.0], [25.0, 25.0, 25.0], [2.0, 0.5, 1.0])):
    levels[i, 0, 0] = np.diag(var) * (10 / 255) ** 2
  x = jnp.full((12, 96, 96, 3), 0.5)
  y, cov, scale = stage2.synthesize(jax.random.PRNGKey(0), x, None, None, 0, (0.5, 1.5),
                                    levels=jnp.asarray(levels), with_scale=True)
  told = np.asarray(stage2.synthetic_stds(cov, scale))
  np.testing.assert_allclose(np.std(np.asarray(y - x), axis=(1, 2, 3)), told, rtol=0.03)
  assert told.max() > 2 * told.min()
  np.testing.assert_allclose(stage2.level_stds(levels)[1], 50 / 255, rtol=1e-6)


def test_level_input_distillation_tells_real_patches_their_images_level(
    stage1_dirs, tmp_path, monkeypatch):
  """`denoiser.level_input`: each real patch is told the classical estimate on its noisy
  image (near the true sigma), the run trains, and the saved model reads the level."""
  load = stage1.load

  def as_awgn(workdir, **kw):  # The fixture's hetero models have awgn's shapes.
    s1_config, model, params = load(workdir, **kw)
    s1_config.noise_model.mode = "awgn"
    return s1_config, stage1.build_model(s1_config, model.noise_model.num_models), params
  monkeypatch.setattr(stage2.stage1, "load", as_awgn)
  told = {}
  make = stage2.make_train_step

  def spy(*args):
    told["real"] = np.asarray(args[-1])
    return make(*args)
  monkeypatch.setattr(stage2, "make_train_step", spy)
  config = tiny_stage2_config(stage1_dirs["per_image"], **{
      "denoiser.level_input": True, "denoiser.arch": "mwcnn",
      "denoiser.widths": (8, 8, 8), "denoiser.convs": 1})
  out = stage2.train_and_evaluate(config, str(tmp_path / "s2"))
  s1_config = load(stage1_dirs["per_image"])[0]
  assert told["real"].shape == (3,)
  np.testing.assert_allclose(told["real"], s1_config.noise.sigma / 255, rtol=0.1)
  assert np.isfinite(out["eval"]["psnr_stage2"])
  d = inference.from_workdir(str(tmp_path / "s2"))
  assert d.takes_level
  y = np.asarray(skimage_data.camera()[:40, :56], np.float32)[None, ..., None] / 255
  y = y + np.random.default_rng(0).normal(0, 0.1, y.shape).astype(np.float32)
  np.testing.assert_allclose(d.run(y), d.apply_fn(d.params, y), atol=1e-5)
  for field, value, match in (("distill.noise_levels", "patch", "one white level"),
                              ("distill.domain", "subimages", "distill.domain='full'")):
    bad = tiny_stage2_config(stage1_dirs["per_image"], **{"denoiser.level_input": True,
                                                          field: value})
    with pytest.raises(ValueError, match=match):
      stage2.train_and_evaluate(bad, str(tmp_path / "bad"))
