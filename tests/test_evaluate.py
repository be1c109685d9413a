"""Paper-protocol evaluation: seeded noisy test sets, noise settings, BM3D, noise levels."""
import json
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from dbsn_jax import evaluate, metrics, realworld
from tests.conftest import REPO, build_once

_DUMP = """
import hashlib, json, sys
from dbsn_jax import evaluate
out = {}
for setting in sys.argv[1:]:
  _, cfg = evaluate.noise_setting(setting)
  noisy, _, _, _ = evaluate.noisy_set("sample:camera,coins,astronaut", 3, cfg, 77, crop=64)
  out[setting] = [hashlib.sha256(y.tobytes()).hexdigest() for y in noisy]
print(json.dumps(out))
"""
SETTINGS = ("25", "hg", "mg")


def _dump_twice(folder):
  del folder
  runs = []
  for _ in range(2):
    out = subprocess.run([sys.executable, "-c", _DUMP, *SETTINGS], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
  return runs


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
  return build_once(tmp_path_factory, "noisy_set_hashes", _dump_twice)


@pytest.mark.parametrize("setting", SETTINGS)
def test_noisy_test_images_are_bit_identical_across_processes(setting, two_processes):
  import hashlib
  first, second = two_processes[0][setting], two_processes[1][setting]
  assert first == second
  assert len(set(first)) == 3  # Different images, different noise.
  _, cfg = evaluate.noise_setting(setting)
  noisy, clean, _, _ = evaluate.noisy_set("sample:camera,coins,astronaut", 3, cfg, 77, crop=64)
  assert [hashlib.sha256(y.tobytes()).hexdigest() for y in noisy] == first
  # Same clean image at two positions: the noise itself differs by position.
  twice, _, _, _ = evaluate.noisy_set("sample:camera,camera", 3, cfg, 77, crop=64)
  assert not np.array_equal(twice[0] - clean[0], twice[1] - clean[0])
  other, _, _, _ = evaluate.noisy_set("sample:camera,coins,astronaut", 3, cfg, 78, crop=64)
  assert not np.array_equal(other[0], noisy[0])
  assert noisy[0].min() < 0 or noisy[0].max() > 1  # Not clipped (protocol).


def test_noise_settings():
  assert evaluate.noise_setting("25")[1].sigma == 25.0
  label, cfg = evaluate.noise_setting("hg")
  assert (label, cfg.kind, cfg.alpha, cfg.delta, cfg.hetero_form) == (
      "hg40-10", "hetero", 40.0, 10.0, "reference")
  assert evaluate.noise_setting("hg_paper")[1].hetero_form == "paper"
  assert evaluate.noise_setting("mg")[1].kind == "multivariate"
  assert evaluate.noise_setting("real")[1].kind == "none"
  with pytest.raises(ValueError, match="unknown noise setting 'poisson'"):
    evaluate.noise_setting("poisson")
  with pytest.raises(ValueError, match="needs a set with real noisy photos"):
    evaluate.load_case("bsd68", "real", 1)
  with pytest.raises(ValueError, match="set cbsd68 is color"):
    evaluate.load_case("cbsd68", "25", 1)


def test_noise_level_function_recovers_the_formula():
  """Binned by clean intensity, the true HG covariances give sqrt(a^2 x^2 + d^2)."""
  import jax
  import jax.numpy as jnp
  from dbsn_jax import noise
  x = jnp.linspace(0, 1, 4096).reshape(1, 64, 64, 1)
  _, cov = noise.hetero(jax.random.PRNGKey(0), x, 40.0, 10.0, "reference")
  centres, std = evaluate.noise_level_function(np.asarray(x[0]), np.asarray(cov[0]), bins=16)
  want = np.sqrt((40 * centres / 255) ** 2 + 10.0 ** 2)
  np.testing.assert_allclose(std[:, 0], want, rtol=0.02)


@pytest.mark.skipif(not evaluate.bm3d_available(), reason="bm3d not installed")
def test_bm3d_beats_the_noisy_input():
  _, cfg = evaluate.noise_setting("25")
  noisy, clean, covs, _ = evaluate.noisy_set("sample:camera", 1, cfg, crop=64)
  out = evaluate.bm3d_denoise(noisy[0], covs[0])
  assert out.shape == clean[0].shape
  assert (evaluate.image_scores(out, clean[0])["psnr"]
          > evaluate.image_scores(noisy[0], clean[0])["psnr"] + 4)


def test_real_noise_pairs_come_from_cc15(tmp_path, monkeypatch):
  """'real' reads CC15's noisy photos beside their clean references (no synthetic noise;
  BM3D, when installed, gets the noise level estimated from each noisy photo)."""
  import os
  from PIL import Image
  from dbsn_jax.data import benchmarks
  from dbsn_jax.inference import load_denoiser
  rng = np.random.default_rng(0)
  for sub in ("clean", "noisy"):
    os.makedirs(tmp_path / "data" / "CC15" / sub)
    for f in benchmarks.SPECS["cc15"].files:
      Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
          tmp_path / "data" / "CC15" / sub / f)
  # Tiny fixture images: drop the 512x512 size check for this test.
  monkeypatch.setitem(benchmarks.SPECS, "cc15", benchmarks.dataclasses.replace(
      benchmarks.SPECS["cc15"], size=None))
  benchmarks._CLASSES.pop("cc15", None)
  monkeypatch.setenv("DBSN_DATA_DIR", str(tmp_path / "data"))
  monkeypatch.setenv("DBSN_TFDS_DIR", str(tmp_path / "tfds"))
  try:
    noisy, clean, covs, names = evaluate.load_case("cc15", "real", 3, stop=2)
    assert covs is None and names == ["5dmark3_iso3200_1", "5dmark3_iso3200_2"]
    want = np.asarray(Image.open(tmp_path / "data" / "CC15" / "noisy" /
                                 "5dmark3_iso3200_2.png"), np.float32) / 255
    np.testing.assert_array_equal(noisy[1], want)
    models = {"stage 2": ("color-awgn", load_denoiser("color-awgn"))}
    bm3d = evaluate.bm3d_available()
    case = evaluate.run_case(models, "cc15", "real", stop=2, bm3d=bm3d, keep=1)
    assert {r["method"] for r in case["rows"]} == {
        "noisy", "stage 2", evaluate.GUIDED_NOISY} | (
        {evaluate.BM3D_ESTIMATED} if bm3d else set())
    # The learning-free guided filter of the noisy photo, scored like every method.
    gf = [r["psnr"] for r in case["rows"] if r["method"] == evaluate.GUIDED_NOISY]
    want = metrics.psnr(jnp.clip(realworld.guided_filter(
        jnp.asarray(noisy[:2]), jnp.asarray(noisy[:2]), 1, 0.01), 0, 1), jnp.asarray(clean[:2]))
    np.testing.assert_allclose(gf, want, rtol=1e-5)
    assert case["nlf"] == {} and len(case["keep"]) == 1
  finally:
    benchmarks._CLASSES.pop("cc15", None)


def test_the_estimated_noise_level_reads_each_channel_off_the_noisy_image():
  # The BM3D baseline on real photos (no true level) gets this estimate per channel.
  from skimage import data
  clean = data.astronaut().astype(np.float32) / 255
  true = np.array([0.04, 0.07, 0.1])
  noisy = clean + np.random.default_rng(0).normal(0, 1, clean.shape) * true
  cov = evaluate.estimated_noise_cov(noisy)
  assert cov.shape == (3, 3) and np.count_nonzero(cov - np.diag(np.diag(cov))) == 0
  np.testing.assert_allclose(np.sqrt(np.diag(cov)), true, rtol=0.1)
  gray = evaluate.estimated_noise_cov(noisy[..., 1:2])
  np.testing.assert_allclose(np.sqrt(gray), [[0.07]], rtol=0.1)


def _write_pairs(root, names, size=24):
  from PIL import Image
  rng = np.random.default_rng(3)
  for sub in ("clean", "noisy"):
    (root / sub).mkdir(parents=True, exist_ok=True)
  for n in names:
    x = rng.integers(40, 216, (size, size + 8, 3))
    y = np.clip(x + rng.normal(0, [6.0, 10.0, 14.0], x.shape), 0, 255)
    Image.fromarray(x.astype(np.uint8)).save(root / "clean" / f"{n}.png")
    Image.fromarray(np.round(y).astype(np.uint8)).save(root / "noisy" / f"{n}.png")


def test_real_pairs_from_a_folder_with_oracle_bm3d_columns(tmp_path):
  # pairs:DIR scores any folder of real pairs (e.g. tools/camera_sim.py's) like CC15,
  # with BM3D given each pair's own level (std or power spectrum) beside the estimate.
  from PIL import Image
  from dbsn_jax.inference import load_denoiser
  _write_pairs(tmp_path / "cam", ["b", "a"])
  spec = f"pairs:{tmp_path / 'cam'}"
  noisy, clean, covs, names = evaluate.load_case(spec, "real", 3)
  assert covs is None and names == ["a", "b"]
  np.testing.assert_array_equal(noisy[1], np.asarray(
      Image.open(tmp_path / "cam" / "noisy" / "b.png"), np.float32) / 255)
  # Under synthetic noise the set is its clean photos.
  syn, syn_clean, syn_covs, _ = evaluate.load_case(spec, "25", 3)
  np.testing.assert_array_equal(syn_clean[0], clean[0])
  assert syn_covs is not None and not np.array_equal(syn[0], noisy[0])
  bm3d = evaluate.bm3d_available()
  models = {"stage 2": ("color-awgn", load_denoiser("color-awgn"))}
  case = evaluate.run_case(models, spec, "real", bm3d=bm3d, keep=0,
                           bm3d_levels=("true", "psd"))
  assert {r["method"] for r in case["rows"]} == {"noisy", "stage 2", evaluate.GUIDED_NOISY} | (
      {evaluate.BM3D_TRUE, evaluate.BM3D_PSD} if bm3d else set())


def test_real_pairs_that_do_not_match_are_refused_naming_them(tmp_path):
  _write_pairs(tmp_path / "cam", ["a", "b"])
  (tmp_path / "cam" / "clean" / "b.png").rename(tmp_path / "cam" / "clean" / "c.png")
  with pytest.raises(ValueError, match=r"same names.*\['b', 'c'\]"):
    evaluate.load_case(f"pairs:{tmp_path / 'cam'}", "real", 3)
  with pytest.raises(ValueError, match="no folder .*missing/noisy"):
    evaluate.load_case(f"pairs:{tmp_path / 'missing'}", "real", 3)
  with pytest.raises(ValueError, match="pairs:DIR"):
    evaluate.load_case("set12", "real", 1)
