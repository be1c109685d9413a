"""Inference: dtype/shape round trips, buckets, tiling, weights files, export."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dbsn_jax import inference, prng
from dbsn_jax.models import MWCNN
from dbsn_jax.train import stage1
from tests.conftest import perturbed, tiny_stage1_config




def _stage1(mode="awgn", channels=1, **kw):
  config = tiny_stage1_config(**{"noise_model.mode": mode, "channels": channels})
  model = stage1.build_model(config)
  params = stage1.create_state(config, model).params
  return inference.stage1_denoiser(config, model, perturbed(params), **kw)


def _mwcnn(channels=1, level_input=False, **kw):
  from dbsn_jax import defaults
  config = defaults.stage2()
  config.channels = channels
  config.denoiser.widths, config.denoiser.convs = (8, 8, 8), 1
  config.denoiser.level_input = level_input
  model = MWCNN(channels, (8, 8, 8), 1, level_input=level_input)
  variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, channels)), None,
                         jnp.zeros((1, 16, 16, 1)) if level_input else None)
  return inference.stage2_denoiser(config, model, {"params": perturbed(variables["params"])},
                                   **kw)


@pytest.mark.parametrize("make", [_stage1, _mwcnn])
def test_round_trips_keep_shape_dtype_and_range(make):
  gray = make()
  rng = np.random.default_rng(0)
  u8 = rng.integers(0, 256, (21, 30), dtype=np.uint8)
  out = gray(u8)
  assert out.shape == u8.shape and out.dtype == np.uint8
  u16 = rng.integers(0, 65536, (17, 19, 1), dtype=np.uint16)
  out16 = gray(u16)
  assert out16.shape == u16.shape and out16.dtype == np.uint16 and out16.max() > 255
  f = rng.random((2, 16, 24, 1)).astype(np.float32)
  outf = gray(f)
  assert outf.shape == f.shape and outf.dtype == np.float32
  assert 0.0 <= outf.min() and outf.max() <= 1.0
  out64 = gray(f.astype(np.float64))  # The same dtype back, float64 too.
  assert out64.dtype == np.float64
  np.testing.assert_allclose(out64, outf, atol=1e-6)
  outj = gray(jnp.asarray(f))
  assert isinstance(outj, jax.Array)
  np.testing.assert_allclose(np.asarray(outj), outf, atol=1e-6)
  # uint8 output is the rounded float output.
  np.testing.assert_array_equal(out, np.round(np.clip(
      np.asarray(gray(u8.astype(np.float32) / 255)), 0, 1) * 255).astype(np.uint8))


def test_color_and_bad_inputs():
  color = _stage1("hetero", channels=3)
  img = np.random.default_rng(0).random((20, 22, 3)).astype(np.float32)
  assert color(img).shape == (20, 22, 3)
  with pytest.raises(ValueError, match="3-channel images, got 1"):
    color(img[..., :1])
  bad = img.copy()
  bad[3, 4, 1] = np.nan
  with pytest.raises(ValueError, match="NaN or Inf"):
    color(bad)
  with pytest.raises(ValueError, match="uint8 or uint16"):
    color((img * 100).astype(np.int32))


def test_buckets_bound_compilations():
  d = _stage1()
  rng = np.random.default_rng(1)
  # Sides 17-48 fall into three buckets per axis (24, 32, 48): at most 9 compilations
  # for 12 different sizes.
  sizes = [(int(rng.integers(17, 49)), int(rng.integers(17, 49))) for _ in range(12)]
  for h, w in sizes:
    d(np.zeros((h, w), np.uint8))
  buckets = {(inference.bucket_size(h), inference.bucket_size(w)) for h, w in sizes}
  assert d.traces == len(buckets) < len(set(sizes))


@pytest.mark.parametrize("make,size,tile", [
    (lambda **kw: _stage1("awgn", **kw), (70, 61), 24),
    (lambda **kw: _stage1("hetero", channels=3, **kw), (45, 52), 20),
    (lambda **kw: _mwcnn(**kw), (301, 283), 144),
])
def test_tiled_equals_untiled(make, size, tile):
  d = make(tile=tile, bucket=False)
  y = prng.uniform(jax.random.PRNGKey(0), (1,) + size + (d.channels,))
  whole = d.run(y, tile=False)
  tiled = d.run(y, tile=True)
  assert d.traces >= 2  # Tiles compiled separately from the whole image.
  np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_weights_round_trip_and_tampering(tmp_path):
  d = _mwcnn()
  inference.save_weights(d, str(tmp_path / "m"))
  again = inference.load_denoiser(str(tmp_path / "m"))
  y = np.random.default_rng(0).random((24, 40)).astype(np.float32)
  np.testing.assert_array_equal(d(y), again(y))
  arrays = dict(np.load(tmp_path / "m" / "weights.npz"))
  key = next(iter(arrays))
  arrays[key] = np.zeros((3,) + arrays[key].shape)
  np.savez(tmp_path / "m" / "weights.npz", **arrays)
  with pytest.raises(ValueError, match="do not match"):
    inference.load_denoiser(str(tmp_path / "m"))
  (tmp_path / "m" / "weights.npz").write_bytes(b"PK\x03\x04 truncated")
  with pytest.raises(ValueError, match="not a dbsn-jax weights folder.*weights.npz"):
    inference.load_denoiser(str(tmp_path / "m"))
  with open(tmp_path / "m" / "weights.npz", "wb") as f:  # A pickled object array.
    np.save(f, np.array([{"a": 1}], dtype=object))
  with pytest.raises(ValueError, match="pickled objects, not plain arrays"):
    inference.load_denoiser(str(tmp_path / "m"))


@pytest.mark.parametrize("meta", ["{}", '{"kind": "stage2"}', '{"kind": "stage2", "config": {}}',
                                  "[1, 2]", "not json"])
def test_a_broken_weights_config_says_what_it_is(tmp_path, meta):
  d = _mwcnn()
  inference.save_weights(d, str(tmp_path))
  (tmp_path / "config.json").write_text(meta)
  with pytest.raises(ValueError, match="not a dbsn-jax weights folder"):
    inference.load_denoiser(str(tmp_path))


def test_export_matches_live_model():
  for d in (_stage1("hetero"), _mwcnn()):
    y = prng.uniform(jax.random.PRNGKey(2), (1, 32, 48, 1))
    blob = inference.export(d, y.shape)
    np.testing.assert_allclose(inference.load_exported(blob)(y), d.apply_fn(d.params, y),
                               atol=1e-5)


def test_jax_and_bfloat16_inputs_come_back_as_they_went_in():
  d = _mwcnn()
  y = np.random.default_rng(0).random((20, 24)).astype(np.float32)
  want = d(y)
  out = d(jnp.asarray(y, jnp.bfloat16))
  assert isinstance(out, jax.Array) and out.dtype == jnp.bfloat16 and out.shape == y.shape
  np.testing.assert_allclose(np.asarray(out, np.float32), want, atol=2e-2)


def test_out_of_range_and_tiny_inputs():
  d = _mwcnn()
  y = np.random.default_rng(0).normal(0.5, 0.6, (20, 20)).astype(np.float32)  # beyond [0, 1]
  out = d(y)
  assert out.shape == y.shape and 0.0 <= out.min() and out.max() <= 1.0
  assert d(np.array([[0.3]], np.float32)).shape == (1, 1)
  assert _stage1()(np.array([[128]], np.uint8)).shape == (1, 1)


@pytest.mark.parametrize("mode,channels,size",
                         [("awgn", 1, (37, 45)), ("multivariate", 3, (20, 27))])
def test_bucket_padding_equals_the_exact_size(mode, channels, size):
  # Padding to a bucket must not change a stage-1 result: D-BSN zeroes the padding's
  # features (as zero padding at the exact size does) and CNN_est averages the image only.
  d = _stage1(mode, channels=channels)
  y = prng.uniform(jax.random.PRNGKey(1), (2,) + size + (channels,))
  exact = d.apply_fn(d.params, y)
  np.testing.assert_allclose(d.run(y), exact, atol=1e-5)
  np.testing.assert_allclose(d.run(y, tile=True), exact, atol=1e-5)


def test_a_tiny_tile_is_raised_with_a_warning_not_crawled_through():
  """--tile 8 once meant a 1-pixel tile step (109,056 tiles for 300x400): now each tile is
  at least 4 overlaps wide, with a warning, and the result is still exact."""
  d = _stage1(tile=8, bucket=False)
  calls = {"n": 0}
  local = d._local

  def counting(*a):
    calls["n"] += 1
    return local(*a)

  d._local = counting
  y = prng.uniform(jax.random.PRNGKey(0), (1, 120, 160, 1))
  with pytest.warns(UserWarning, match="tile 8 is too small"):
    tiled = d.run(y, tile=True)
  assert calls["n"] <= 64, calls
  d._local = local
  np.testing.assert_allclose(tiled, d.run(y, tile=False), atol=1e-5)


def test_self_ensemble_is_the_mean_of_the_eight_views_undone():
  d = _mwcnn()
  y = np.random.default_rng(1).random((1, 20, 28, 1)).astype(np.float32)
  views = []
  for k in range(8):  # NumPy's rotations and flips, independent of dbsn_jax.dihedral.
    v = np.rot90(y, k % 4, axes=(1, 2))
    v = v[:, ::-1] if k >= 4 else v
    out = np.asarray(d.run(jnp.asarray(np.ascontiguousarray(v))))
    out = out[:, ::-1] if k >= 4 else out
    views.append(np.rot90(out, -(k % 4), axes=(1, 2)))
  ens = np.asarray(d.run(jnp.asarray(y), ensemble=True))
  np.testing.assert_allclose(ens, np.mean(views, axis=0), atol=1e-6)
  assert np.abs(ens - np.asarray(d.run(jnp.asarray(y)))).max() > 1e-4  # Not a no-op.
  u8 = (y[0, ..., 0] * 255).astype(np.uint8)
  out = d(u8, ensemble=True)
  assert out.shape == u8.shape and out.dtype == np.uint8


def test_bayer_phase_models_refuse_to_self_ensemble():
  config = tiny_stage1_config(**{"realworld.downsample": 2, "realworld.bayer_groups": True})
  d = inference.stage1_denoiser(config, stage1.build_model(config), params={})
  assert not d.dihedral_ok
  with pytest.raises(ValueError, match="Bayer phases"):
    d.run(jnp.zeros((1, 8, 8, 1)), ensemble=True)
  config = tiny_stage1_config(**{"realworld.downsample": 2})
  assert inference.stage1_denoiser(config, stage1.build_model(config), params={}).dihedral_ok


@pytest.mark.parametrize("arch,size", [("mwcnn", (37, 45)), ("mwcnn", (24, 40)),
                                       ("dncnn", (21, 50)), ("dncnn", (1, 3)),
                                       ("mwcnn_level", (37, 45))])
def test_stage2_buckets_and_tiles_equal_the_exact_size(arch, size):
  # The bundled gray-awgn25 once differed by 11/255 at the right and bottom edges (and
  # 0.0066 inside) between a bucket and the exact size: the bucket's mirrored padding
  # reached the image through the convolutions. Now both networks zero it. A network told
  # the noise level gets the whole image's, whatever the bucket or tile.
  d = {"mwcnn": _mwcnn, "dncnn": _dncnn,
       "mwcnn_level": lambda: _mwcnn(level_input=True)}[arch]()
  y = prng.uniform(jax.random.PRNGKey(3), (2,) + size + (1,))
  exact = np.asarray(d.apply_fn(d.params, y))
  assert d.bucket and (inference.bucket_size(size[0], d.multiple) > size[0]
                       or inference.bucket_size(size[1], d.multiple) > size[1])
  np.testing.assert_allclose(d.run(y), exact, atol=1e-5)
  if min(size) > 8:
    d.tile = 4 * inference._round_up(d.radius, d.multiple)
    np.testing.assert_allclose(d.run(y, tile=True), exact, atol=1e-5)


def _dncnn(channels=1, **kw):
  from dbsn_jax import defaults
  from dbsn_jax.models import DnCNN
  config = defaults.stage2()
  config.channels = channels
  config.denoiser.arch, config.denoiser.features, config.denoiser.depth = "dncnn", 8, 4
  model = DnCNN(channels, 8, 4)
  variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, channels)))
  stats = jax.tree.map(lambda s: s + 0.3, variables["batch_stats"])  # BN with offsets.
  return inference.stage2_denoiser(config, model, {"params": perturbed(variables["params"]),
                                                   "batch_stats": stats}, **kw)


def test_a_0_255_float_image_and_an_empty_one_are_refused_not_whitened():
  d = _mwcnn()
  img = np.random.default_rng(0).random((16, 16)).astype(np.float32)
  with pytest.raises(ValueError, match=r"values in \[0, 1\].*divide 8-bit data by 255"):
    d(img * 255)  # Once clipped to a white image without a word.
  noisy = img + np.random.default_rng(1).normal(0, 50 / 255, img.shape).astype(np.float32)
  assert d(noisy).shape == img.shape  # Noise overshooting [0, 1] is fine.
  with pytest.raises(ValueError, match="empty"):
    d(np.zeros((0, 0), np.float32))


def test_noise_cov_in_a_bucket_equals_the_exact_size():
  # The noise level a stage-1 model reports (dbsn-eval's curves, the photo pipeline's
  # table) runs in size buckets: one compilation for a folder of mixed sizes.
  d = _stage1("multivariate", channels=3)
  exact = _stage1("multivariate", channels=3, bucket=False)
  y = prng.uniform(jax.random.PRNGKey(2), (1, 21, 30, 3))
  cov = np.asarray(d.noise_cov(y))
  assert cov.shape == (1, 21, 30, 3, 3)
  np.testing.assert_allclose(cov, np.asarray(exact.noise_cov(y)), atol=1e-6)
  with pytest.raises(ValueError, match="need a stage-1 model"):
    _mwcnn().noise_cov(y[..., :1])


def test_a_level_model_is_told_the_estimate_or_the_users_noise_std():
  d = _mwcnn(channels=3, level_input=True)
  rng = np.random.default_rng(0)
  clean = np.tile(np.linspace(0.2, 0.8, 48, dtype=np.float32)[None, :, None], (40, 1, 3))
  y = (clean + rng.normal(0, 20 / 255, clean.shape)).astype(np.float32)[None]
  est = d.noise_level(y)
  np.testing.assert_allclose(est, 20 / 255, rtol=0.1)  # The classical estimate.
  np.testing.assert_allclose(d.run(y), d.run(y, noise_std=float(est[0])), atol=1e-6)
  assert np.abs(d.run(y, noise_std=60 / 255) - d.run(y)).max() > 1e-3
  u8 = np.round(np.clip(y[0], 0, 1) * 255).astype(np.uint8)
  np.testing.assert_array_equal(d(u8, noise_std=40.0), d(u8, noise_std=40.0))
  assert not np.array_equal(d(u8, noise_std=5.0), d(u8, noise_std=60.0))
  # The self-ensemble tells all eight views the one estimate on the image.
  views = [inference.dihedral.inverse(d.run(inference.dihedral.forward(y, k),
                                            noise_std=float(est[0])), k) for k in range(8)]
  np.testing.assert_allclose(d.run(y, ensemble=True), np.mean(views, 0), atol=1e-5)
  with pytest.raises(ValueError, match="positive"):
    d.run(y, noise_std=0.0)
  with pytest.raises(ValueError, match="blind"):
    _mwcnn(channels=3).run(y, noise_std=0.1)
