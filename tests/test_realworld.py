"""Pixel-shuffle down-sampling, Bayer groups and the guided filter (docs/design.md section 8)."""
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from dbsn_jax import realworld


@pytest.mark.parametrize("f", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("size", [(17, 23), (20, 20), (9, 31)])
def test_downsample_then_upsample_is_identity(f, size):
  x = np.random.default_rng(f).random((2,) + size + (3,), np.float32)
  s = realworld.downsample(jnp.asarray(x), f)
  assert s.shape == (2 * f * f, -(-size[0] // f), -(-size[1] // f), 3)
  np.testing.assert_array_equal(np.asarray(realworld.upsample(s, f, size)), x)


def test_sub_image_is_the_strided_grid():
  x = np.random.default_rng(0).random((2, 12, 8, 1), np.float32)
  s = np.asarray(realworld.unshuffle(jnp.asarray(x), 4))
  for b in range(2):
    for a in range(4):
      for c in range(4):
        np.testing.assert_array_equal(s[b * 16 + a * 4 + c], x[b, a::4, c::4])


def test_reflect_padding_mirrors_without_repeating_the_edge():
  x = np.arange(5, dtype=np.float32).reshape(1, 5, 1, 1) * np.ones((1, 1, 4, 1), np.float32)
  s = realworld.downsample(jnp.asarray(x), 4)
  full = np.asarray(realworld.shuffle(s, 4))
  assert full.shape[1] == 8
  np.testing.assert_array_equal(full[0, :, 0, 0], [0, 1, 2, 3, 4, 3, 2, 1])


def test_bayer_groups_match_the_table_for_f4():
  # Offset (a, c) in row-major order -> Bayer phase (a mod 2, c mod 2) -> 2*(a%2) + c%2.
  table = [0, 1, 0, 1,
           2, 3, 2, 3,
           0, 1, 0, 1,
           2, 3, 2, 3]
  np.testing.assert_array_equal(realworld.bayer_groups(4), table)


def test_model_ids_for_groups_and_images():
  s = realworld.Settings(downsample=4, bayer_groups=True)
  ids = np.asarray(realworld.model_ids(np.array([0, 2]), s, per_image=True))
  np.testing.assert_array_equal(ids[:16], realworld.bayer_groups(4))
  np.testing.assert_array_equal(ids[16:], 8 + realworld.bayer_groups(4))
  assert realworld.num_noise_models(3, s, True) == 12
  assert realworld.num_noise_models(3, s, False) == 4
  shared = np.asarray(realworld.model_ids(np.array([5]), s, per_image=False))
  np.testing.assert_array_equal(shared, realworld.bayer_groups(4))
  plain = realworld.Settings(downsample=2)
  assert realworld.num_noise_models(3, plain, False) == 0
  np.testing.assert_array_equal(np.asarray(realworld.model_ids(np.array([1]), plain, True)),
                                [1] * 4)


def test_settings_refuse_bad_values_by_name():
  def cfg(**kw):
    c = ml_collections.ConfigDict(dict(downsample=4, bayer_groups=True, guided_filter=True,
                                       gf_radius=1, gf_eps=0.01))
    c.update(kw)
    return ml_collections.ConfigDict({"realworld": c})
  assert realworld.settings(cfg()).num_groups == 4
  assert realworld.settings(ml_collections.ConfigDict({})) == realworld.Settings()
  with pytest.raises(ValueError, match="realworld.bayer_groups needs an even"):
    realworld.settings(cfg(downsample=3))
  with pytest.raises(ValueError, match="realworld.downsample"):
    realworld.settings(cfg(downsample=0))
  with pytest.raises(ValueError, match="realworld.gf_eps"):
    realworld.settings(cfg(gf_eps=0.0))


def _guided_filter_numpy(p, g, r, eps):
  """He et al. with explicit window sums over the clipped window, float64."""
  p, g = p.astype(np.float64), g.astype(np.float64)
  h, w = p.shape

  def box(v):
    out = np.empty_like(v)
    for i in range(h):
      for j in range(w):
        out[i, j] = v[max(i - r, 0):i + r + 1, max(j - r, 0):j + r + 1].mean()
    return out

  mg, mp = box(g), box(p)
  a = (box(g * p) - mg * mp) / (box(g * g) - mg * mg + eps)
  b = mp - a * mg
  return box(a) * g + box(b)


@pytest.mark.parametrize("r,eps", [(1, 0.01), (2, 1e-3)])
def test_guided_filter_equals_float64_window_sums(r, eps):
  rng = np.random.default_rng(r)
  p = rng.random((2, 19, 26, 3), np.float32)
  gray = rng.random((2, 19, 26, 1), np.float32)
  # Gray guide for all channels, and each channel guided by itself.
  got = np.asarray(realworld.guided_filter(p, gray, r, eps))
  got_self = np.asarray(realworld.guided_filter(p, p, r, eps))
  for b in range(2):
    for c in range(3):
      np.testing.assert_allclose(got[b, ..., c],
                                 _guided_filter_numpy(p[b, ..., c], gray[b, ..., 0], r, eps),
                                 atol=1e-5)
      np.testing.assert_allclose(got_self[b, ..., c],
                                 _guided_filter_numpy(p[b, ..., c], p[b, ..., c], r, eps),
                                 atol=1e-5)


def test_guided_filter_with_tiny_eps_and_self_guide_returns_the_input():
  p = np.random.default_rng(3).random((1, 16, 16, 3), np.float32)
  np.testing.assert_allclose(np.asarray(realworld.guided_filter(p, p, 1, 1e-9)), p, atol=1e-4)
  # A constant image passes through for any eps.
  flat = np.full((1, 8, 8, 1), 0.3, np.float32)
  np.testing.assert_allclose(np.asarray(realworld.guided_filter(flat, flat, 1, 0.01)), flat,
                             atol=1e-6)
