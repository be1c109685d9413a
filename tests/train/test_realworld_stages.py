"""Stages 1 and 2 on down-sampled sub-images with Bayer-group noise models
(docs/design.md section 8)."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dbsn_jax import defaults, inference, metrics, realworld, workflow
from dbsn_jax.data import image_io, input_pipeline
from dbsn_jax.models import NoiseEstimator
from dbsn_jax.train import stage1, stage2
from tests.conftest import apply_overrides, build_once, tiny_stage1_config


def _smooth_images(n, size, rng):
  yy, xx = np.mgrid[0:size, 0:size] / size
  return [(0.5 + 0.2 * (xx - 0.5) + 0.05 * np.sin(2 * np.pi * rng.uniform(0.5, 1.5) * yy)
           )[..., None].astype(np.float32) for _ in range(n)]


def _box_correlated(x, rng, sigma=0.1):
  """White noise blurred by a 2x2 box (lag-1 correlation 0.5), std sigma."""
  z = rng.standard_normal((x.shape[0] + 1, x.shape[1] + 1))
  z = (z[:-1, :-1] + z[1:, :-1] + z[:-1, 1:] + z[1:, 1:]) / 2.0
  return (x + sigma * z[..., None]).astype(np.float32)


def _train_on_noisy(noisy, f, steps):
  c = apply_overrides(defaults.stage1(), {
      "model.features": 8, "model.blocks": (1, 1), "noise.kind": "none",
      "data.patch_size": 24, "data.batch_size": 4, "realworld.downsample": f,
      "optim.lr": 3e-3, "train.num_steps": steps})
  rw = realworld.settings(c)
  model = stage1.build_model(c, len(noisy))
  state = stage1.create_state(c, model, len(noisy))
  images, ids = realworld.split_images(noisy, rw, False) if f > 1 else (noisy, None)
  it = input_pipeline.train_iterator(
      input_pipeline.train_dataset(images, 24, 4, 0, image_ids=ids), 1)
  step = stage1.make_train_step(c, model)
  for _ in range(steps):
    state, _ = step(state, next(it))
  return stage1.make_image_denoiser(model, rw), state.params


@pytest.mark.optimized
def test_down_sampling_removes_spatially_correlated_noise_the_plain_path_keeps():
  rng = np.random.default_rng(0)
  clean = _smooth_images(5, 96, rng)
  noisy = [_box_correlated(x, rng) for x in clean]
  x, y = jnp.asarray(clean[4])[None], jnp.asarray(noisy[4])[None]
  scores = {}
  for f in (1, 2):
    denoise, params = _train_on_noisy(noisy[:4], f, 800)
    mu = denoise(params, y)["mu"]
    leak = np.corrcoef(np.ravel(y - x), np.ravel(mu - x))[0, 1]
    scores[f] = (float(metrics.psnr(mu, x)[0]), leak)
  # Without down-sampling the blind spot sees the noise through the correlated
  # neighbours and copies it into mu; on the 2x2 sub-images the neighbours' noise is
  # independent, so mu keeps the signal only.
  assert scores[1][1] > 0.1 and abs(scores[2][1]) < 0.05, scores
  assert scores[2][0] > scores[1][0] + 1.0, scores


def test_synthesised_noise_follows_each_bayer_groups_model():
  rw = realworld.Settings(downsample=4, bayer_groups=True)
  est = NoiseEstimator(channels=1, mode="awgn", num_models=4)
  x = jnp.full((2, 64, 64, 1), 0.5)
  params = est.init(jax.random.PRNGKey(0), x[:1], jnp.zeros((1,), jnp.int32))["params"]
  # Group g: output bias log-spaced, so the 4 groups have clearly different stds.
  stds = np.array([0.02, 0.05, 0.1, 0.2])
  params["out_bias"] = jnp.asarray(np.log(np.expm1(stds - est.floor)) + est.offset)[:, None]

  class Frozen:  # The part of a stage-1 model `synthesize` uses.
    noise_model = est
  y, cov = jax.jit(lambda p: stage2.synthesize(jax.random.PRNGKey(1), x, Frozen, p, 0,
                                                (1.0, 1.0), rw))({"noise_model": params})
  r = np.asarray(y - x)[..., 0]
  for a in range(4):
    for c in range(4):
      g = 2 * (a % 2) + c % 2
      got = r[:, a::4, c::4].std()
      assert abs(got / stds[g] - 1) < 0.1, (a, c, got, stds[g])
      np.testing.assert_allclose(np.asarray(cov)[:, a::4, c::4, 0, 0], stds[g] ** 2, rtol=1e-4)


def test_own_image_levels_tile_with_the_down_sampling_period():
  rng = np.random.default_rng(0)
  a = rng.standard_normal((3, 2, 2, 3, 3)) * 0.05
  levels = jnp.asarray(a @ np.swapaxes(a, -1, -2) + 1e-4 * np.eye(3), jnp.float32)
  x = jnp.asarray(rng.random((64, 8, 12, 3)), jnp.float32)
  y, cov = stage2.synthesize(jax.random.PRNGKey(0), x, None, None, 0, (1.0, 1.0),
                             realworld.Settings(downsample=2), levels)
  cov, r = np.asarray(cov), np.asarray(y - x)
  picks = [int(np.argmin([np.abs(cov[b, 0, 0] - lv[0, 0]).max() for lv in levels]))
           for b in range(64)]
  assert len(set(picks)) == 3  # Each patch drew one training image's levels.
  for b, i in enumerate(picks):
    for p in range(2):
      for q in range(2):
        np.testing.assert_array_equal(cov[b, p::2, q::2], np.broadcast_to(
            levels[i, p, q], cov[b, p::2, q::2].shape))
  for p in range(2):  # The noise has each phase's covariance (pooled over patches).
    for q in range(2):
      sel = np.array(picks) == 0
      res = r[sel, p::2, q::2].reshape(-1, 3)
      np.testing.assert_allclose(res.T @ res / len(res), levels[0, p, q], atol=2e-3)


def _photos(folder, names, size, seed):
  """Small smooth noisy RGB 'photos' as PNG files; returns the folder spec."""
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(seed)
  for name in names:
    x = _smooth_images(1, size, rng)[0] * np.array([1.0, 0.8, 0.6], np.float32)
    y = np.clip(x + 0.05 * rng.standard_normal(x.shape), 0, 1)
    image_io.write(os.path.join(folder, name + ".png"), np.round(255 * y).astype(np.uint8))
  return "folder:" + str(folder)


def _real_config(tmp_path):
  """Pipeline on 'real' noisy photos (no synthetic noise, no ground truth): f = 2."""
  noisy = _photos(tmp_path / "noisy", ["a", "b"], 40, 0)
  clean = _photos(tmp_path / "clean", ["c", "d"], 40, 1)
  s1 = tiny_stage1_config(**{
      "channels": 3, "data.train": noisy, "noise.kind": "none",
      "noise_model.mode": "multivariate", "noise_model.per_image": True,
      "model.sigma_form": "full", "realworld.downsample": 2, "realworld.bayer_groups": True,
      "realworld.guided_filter": True, "data.patch_size": 16, "eval.source": "",
      "train.num_steps": 4})
  s2 = apply_overrides(defaults.stage2(), {
      "denoiser.widths": (8, 8, 8), "denoiser.convs": 1, "data.clean": clean,
      "data.clean_start": 0,
      "data.patch_size": 16, "data.batch_size": 4, "data.real_fraction": 0.5,
      "data.num_threads": 1, "train.num_steps": 3, "train.checkpoint_every": 3,
      "train.log_every": 1})
  return defaults.workflow(s1, s2)


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
  """One tiny real-photo pipeline run shared by the tests below: (workdir, output)."""
  return build_once(tmp_path_factory, "real_run",
                    lambda folder: (folder, workflow.run(_real_config(folder), str(folder))))


def test_real_photo_pipeline_down_samples_in_stage1_and_not_in_stage2(real_run):
  tmp_path, out = real_run
  # No ground truth: the photos come back denoised by stage 2, with a grid.
  assert out["denoised"] == str(tmp_path / "denoised")
  assert sorted(os.listdir(out["denoised"])) == ["a.png", "b.png", "grid.png",
                                                 "noise_levels.png"]
  assert [r["photo"] for r in out["noise_levels"]] == ["a", "b"]
  s1 = inference.from_workdir(str(tmp_path / "stage1"), tile=40, max_pixels=0)
  s2 = inference.from_workdir(str(tmp_path / "stage2"))
  assert (s1.multiple, s1.post_fn is not None) == (2, True)
  # The Denoiser (buckets, tiles at multiples of f) equals the training-time path.
  config1, model, params = stage1.load(str(tmp_path / "stage1"))
  assert s1.radius == 2 * model.dbsn.receptive_radius  # Sub-image radius, at full size.
  y = jnp.asarray(np.random.default_rng(0).random((1, 48, 64, 3), np.float32))
  want = stage1.make_image_denoiser(model, realworld.settings(config1))(params, y)["filtered"]
  np.testing.assert_allclose(np.asarray(s1.run(y, tile=False)), np.asarray(want), atol=1e-5)
  np.testing.assert_allclose(np.asarray(s1.run(y, tile=True)), np.asarray(want), atol=1e-5)
  # Stage 2 runs on full-size photos directly: no down-sampling, any size.
  assert s2.multiple == 8 and s2.post_fn is None
  assert s2(np.zeros((37, 45, 3), np.uint8)).shape == (37, 45, 3)


def test_real_pairs_hold_each_photo_beside_its_stage1_target(real_run):
  s1c, model, params = stage1.load(str(real_run[0] / "stage1"))
  photos = [np.random.default_rng(i).random((20, 22, 3), np.float32) for i in range(2)]
  pairs = stage2.real_pairs(photos, s1c, model, params)
  rw = realworld.settings(s1c)
  denoise = stage1.make_denoise_fn(model, rw)
  for i, (pair, photo) in enumerate(zip(pairs, photos)):
    assert pair.shape == (20, 22, 6)
    np.testing.assert_array_equal(pair[..., :3], photo)
    ids = realworld.model_ids(jnp.array([i]), rw, per_image=True)
    np.testing.assert_array_equal(np.asarray(ids) // 4, [i] * 4)  # Photo i's own models.
    want = denoise(params, jnp.asarray(photo)[None], ids)["filtered"][0]
    np.testing.assert_allclose(pair[..., 3:], np.asarray(want), atol=1e-6)


def test_stage2_refuses_a_patch_size_that_the_factor_does_not_divide(tmp_path):
  config = _real_config(tmp_path)
  with config.stage1.unlocked():
    config.stage1.realworld.downsample = 4
  config.stage2.data.patch_size = 26
  with pytest.raises(ValueError, match="multiple of stage 1's realworld.downsample=4"):
    stage2.validate(config.stage2, config.stage1)


def test_a_subimage_stage2_trains_and_denoises_where_stage1_did(real_run, tmp_path):
  """distill.domain='subimages': the network learns on the f^2 sub-images (the white
  per-group noise stage 1 learned) and runs on them, reassembled and guided-filtered;
  the Denoiser (buckets) equals the training-time path (issue 15)."""
  config = _real_config(tmp_path)
  s2c = config.stage2
  s2c.stage1_workdir = str(real_run[0] / "stage1")
  s2c.distill.domain, s2c.distill.weighting = "subimages", "means"
  s2c.data.patch_size = 32  # Sub-image patches of 16: a multiple of 8 for MWCNN.
  out = stage2.train_and_evaluate(s2c, str(tmp_path / "s2"))
  assert out["complete"]
  config2, model, state = stage2.load(str(tmp_path / "s2"))
  assert config2.distill.domain == "subimages" and config2.realworld.downsample == 2
  d = inference.from_workdir(str(tmp_path / "s2"))
  assert (d.multiple, d.post_fn is not None) == (16, True)
  want_fn = stage2.make_stage2_fn(model, config2)
  y = jnp.asarray(np.random.default_rng(0).random((1, 48, 64, 3), np.float32))
  want = np.asarray(want_fn(state.params, state.batch_stats, y))
  np.testing.assert_allclose(np.asarray(d.run(y)), want, atol=1e-5)
  odd = jnp.asarray(np.random.default_rng(1).random((1, 37, 45, 3), np.float32))
  exact = inference.from_workdir(str(tmp_path / "s2"), bucket=False).run(odd)
  np.testing.assert_allclose(np.asarray(d.run(odd)), np.asarray(exact), atol=1e-5)
  # Not the full-size network: the same weights on the whole photo give another image.
  full = stage2.make_stage2_fn(model)(state.params, state.batch_stats, y)
  assert float(jnp.max(jnp.abs(full - want))) > 1e-3


def test_subimage_stage2_needs_a_down_sampling_stage1(tmp_path):
  config = _real_config(tmp_path)
  with config.stage1.unlocked():
    config.stage1.realworld.downsample, config.stage1.realworld.bayer_groups = 1, False
  config.stage2.distill.domain = "subimages"
  with pytest.raises(ValueError, match="distill.domain='subimages' needs a stage 1"):
    stage2.validate(config.stage2, config.stage1)
  config.stage2.distill.domain = "tiles"
  with pytest.raises(ValueError, match="distill.domain must be one of"):
    stage2.validate(config.stage2, config.stage1)
