"""tools/per_image_noise.py reads each training image's own noise model and its true level."""
import os
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from dbsn_jax import noise
from dbsn_jax.data import noisy_sets, sources
from dbsn_jax.train import stage1
from tests.conftest import tiny_stage1_config

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
import per_image_noise  # noqa: E402


def test_known_models_report_each_images_true_level():
  """A per-image CNN_est whose model i outputs exactly image i's sigma_i: the tool's
  'known' column equals 'true' on every image, and 'true' is the config's sigma_i."""
  config = tiny_stage1_config(**{"noise_model.per_image": True, "noise.kind": "awgn_per_image",
                                 "noise.sigma_range": (5.0, 50.0)})
  train = sources.load(config.data.train, 1)
  sigmas = np.asarray(noise.image_sigma(jnp.arange(len(train)), 5.0, 50.0))
  model = stage1.build_model(config, num_images=len(train))
  params = stage1.create_state(config, model, len(train)).params
  nm = dict(params["noise_model"])  # Zero weights into the output, the bias inverting
  nm["out_kernel"] = jnp.zeros_like(nm["out_kernel"])  # softplus(v - 4) + 1e-3.
  nm["out_bias"] = jnp.asarray([[4.0 + np.log(np.expm1(s / 255.0 - 1e-3))] for s in sigmas],
                               jnp.float32)
  rows = per_image_noise.rows_for(config, model, {**params, "noise_model": nm},
                                  train.images, train.names, crop=48)
  assert [r["name"] for r in rows] == train.names
  np.testing.assert_allclose([r["true"] for r in rows], sigmas, rtol=1e-4)
  np.testing.assert_allclose([r["known"] for r in rows], sigmas, rtol=1e-4)
  for r in rows:  # Picked blind, the level is one of the table's models.
    assert np.min(np.abs(r["picked"] / sigmas - 1)) < 1e-4
  # The PCA estimate of each noisy 48 x 48 crop: near the truth, not a model's output.
  np.testing.assert_allclose([r["estimated"] for r in rows], sigmas, rtol=0.25)
  text = per_image_noise.table(rows)
  assert text.splitlines()[2].startswith(f"| all ({len(rows)}) |")
  assert text.splitlines()[2].split("|")[3].strip().startswith("0.00 / ")


def test_real_noise_is_measured_against_its_clean_photo():
  """Real noise (noise.kind='none'): the truth is std(noisy - clean) of each pair, and
  without the clean photos the tool says what it needs."""
  config = tiny_stage1_config(**{"noise_model.per_image": True, "noise.kind": "none"})
  clean = [np.asarray(x, np.float32) for x in sources.load(config.data.train, 1).images]
  rng = np.random.default_rng(0)
  sigmas = [20.0, 30.0, 40.0]
  noisy = [x + s / 255 * rng.standard_normal(x.shape).astype(np.float32)
           for x, s in zip(clean, sigmas)]
  model = stage1.build_model(config, num_images=len(noisy))
  params = stage1.create_state(config, model, len(noisy)).params
  names = ["a", "b", "c"]
  rows = per_image_noise.rows_for(config, model, params, noisy, names, crop=48, clean=clean)
  for r, x, y in zip(rows, clean, noisy):
    d = 255 * (noisy_sets.centre_crop(y, 48) - noisy_sets.centre_crop(x, 48))
    np.testing.assert_allclose(r["true"], d.std(), rtol=1e-4)
  np.testing.assert_allclose([r["estimated"] for r in rows], sigmas, rtol=0.25)
  with pytest.raises(ValueError, match="--clean"):
    per_image_noise.rows_for(config, model, params, noisy, names, crop=48)
