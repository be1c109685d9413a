"""tools/noise_vs_texture.py tells stationary noise from noise that grows with texture."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
import noise_vs_texture  # noqa: E402


def _clean(side=96):
  """A photo with flat left half and a textured right half, `(H, W, 3)` in [0, 1]."""
  rng = np.random.default_rng(0)
  img = np.full((side, side, 3), 0.5)
  img[:, side // 2:] += 0.3 * rng.uniform(-1, 1, (side, side // 2, 1))
  return img


def test_white_noise_reads_the_same_in_flat_and_textured_bins():
  clean = _clean()
  noisy = clean + np.random.default_rng(1).normal(0, 10 / 255, clean.shape)
  p = noise_vs_texture.profile(noisy, clean)
  assert p["std"] == pytest.approx(10.0, rel=0.05)
  np.testing.assert_allclose(p["by_texture"], 10.0, rtol=0.1)
  assert p["texture_ratio"] == pytest.approx(1.0, abs=0.15)


def test_noise_spared_in_texture_reads_high_there():
  """Flat regions with 4/255, textured ones with 12/255 (as in-camera noise reduction
  leaves them): the textured bin reads ~3x the flat one, the overall std between."""
  clean = _clean()
  std = np.where(noise_vs_texture.texture(clean) > np.median(noise_vs_texture.texture(clean)),
                 12.0, 4.0)[..., None] / 255
  noisy = clean + np.random.default_rng(2).normal(0, 1, clean.shape) * std
  p = noise_vs_texture.profile(noisy, clean)
  assert p["by_texture"][0] == pytest.approx(4.0, rel=0.1)
  assert p["by_texture"][-1] == pytest.approx(12.0, rel=0.1)
  assert p["texture_ratio"] > 2.5
  assert p["by_texture"][0] < p["std"] < p["by_texture"][-1]
  assert "| mean of 1 |" in noise_vs_texture.table([{"name": "x", **p}])


def test_mismatched_pair_is_refused_by_shape():
  with pytest.raises(ValueError, match=r"noisy \(8, 8, 3\) and clean \(8, 9, 3\)"):
    noise_vs_texture.profile(np.zeros((8, 8, 3)), np.zeros((8, 9, 3)))


def test_binary_writes_each_pairs_row(tmp_path):
  """The script end to end on two tiny pairs, imported beside per_image_noise (which
  defines --clean and --json too: this module defines its flags only as a script)."""
  import subprocess

  from PIL import Image
  import per_image_noise  # noqa: F401
  rng = np.random.default_rng(3)
  for d in ("noisy", "clean"):
    (tmp_path / d).mkdir()
  for name in ("a", "b"):
    clean = (_clean(48) * 255).round()
    noisy = np.clip(clean + rng.normal(0, 8, clean.shape), 0, 255).round()
    Image.fromarray(clean.astype(np.uint8)).save(tmp_path / "clean" / f"{name}.png")
    Image.fromarray(noisy.astype(np.uint8)).save(tmp_path / "noisy" / f"{name}.png")
  out = tmp_path / "rows.json"
  tool = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "noise_vs_texture.py")
  subprocess.run([sys.executable, tool, f"--noisy=folder:{tmp_path / 'noisy'}",
                  f"--clean=folder:{tmp_path / 'clean'}", f"--json={out}"], check=True,
                 capture_output=True)
  import json
  rows = json.loads(out.read_text())
  assert [r["name"] for r in rows] == ["a", "b"]
  for r in rows:
    assert r["std"] == pytest.approx(8.0, rel=0.15)
