"""dbsn-denoise on a folder: one output per input, same size/mode, inputs protected."""
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from dbsn_jax import defaults, inference
from dbsn_jax.models import DnCNN
from tests.conftest import REPO


def _tiny_dncnn_weights(directory, channels, level_input=False):
  """A small random DnCNN saved as a weights directory."""
  config = defaults.stage2()
  config.channels = channels
  config.denoiser.arch, config.denoiser.features, config.denoiser.depth = "dncnn", 8, 3
  config.denoiser.level_input = level_input
  model = DnCNN(channels, 8, 3, level_input=level_input)
  variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, channels)), False, None,
                         jnp.zeros((1, 8, 8, 1)) if level_input else None)
  inference.save_weights(inference.stage2_denoiser(config, model, dict(variables)),
                         str(directory))
  return str(directory)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  return _tiny_dncnn_weights(tmp_path_factory.mktemp("model"), 1)


def _run(*args):
  return subprocess.run([sys.executable, "-m", "dbsn_jax.cli.denoise", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=300)


def test_folder_in_same_modes_out(tmp_path, model_dir):
  src = tmp_path / "in"
  src.mkdir()
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 256, (20, 30), dtype=np.uint8)).save(src / "gray.png")
  Image.fromarray(rng.integers(0, 256, (25, 17, 3), dtype=np.uint8)).save(src / "rgb.png")
  Image.fromarray(rng.integers(0, 256, (12, 14, 4), dtype=np.uint8)).save(src / "rgba.png")
  Image.fromarray(rng.integers(0, 65536, (16, 18), dtype=np.uint16)).save(src / "deep.png")
  (src / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
  out = _run(f"--model={model_dir}", f"--output_dir={tmp_path / 'out'}", str(src))
  assert out.returncode == 1  # One unreadable file...
  assert "broken.jpg" in out.stderr and "Traceback" not in out.stderr
  assert "denoised 4 of 5" in out.stdout  # ...and the others were written.
  res = tmp_path / "out"
  for name, mode, size in (("gray.png", "L", (30, 20)), ("rgb.png", "RGB", (17, 25)),
                           ("rgba.png", "RGBA", (14, 12))):
    with Image.open(res / name) as im:
      assert im.mode == mode and im.size == size
  import tifffile
  deep = tifffile.imread(res / "deep.tif")
  assert deep.dtype == np.uint16 and deep.shape == (16, 18)


def test_never_overwrites_inputs(tmp_path, model_dir):
  img = np.random.default_rng(0).integers(0, 256, (10, 10), dtype=np.uint8)
  Image.fromarray(img).save(tmp_path / "a.png")
  out = _run(f"--model={model_dir}", f"--output_dir={tmp_path}", str(tmp_path / "a.png"))
  assert out.returncode == 1 and "refusing to write" in out.stderr
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), img)


def test_unknown_model_and_empty_input_are_clear_errors(tmp_path):
  Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
  out = _run("--model=no-such-model", f"--output_dir={tmp_path / 'o'}", str(tmp_path))
  assert out.returncode == 2 and "no model 'no-such-model'" in out.stderr
  (tmp_path / "empty").mkdir()
  out = _run("--model=no-such-model", f"--output_dir={tmp_path / 'o'}", str(tmp_path / "empty"))
  assert out.returncode == 2 and "no input images" in out.stderr


@pytest.fixture(scope="module")
def color_model_dir(tmp_path_factory):
  return _tiny_dncnn_weights(tmp_path_factory.mktemp("color_model"), 3)


def test_channel_conversions(tmp_path, model_dir, color_model_dir):
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 256, (9, 11), dtype=np.uint8)).save(tmp_path / "g.png")
  Image.fromarray(rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)).save(tmp_path / "c.png")
  for model, out_dir in ((model_dir, "o1"), (color_model_dir, "o3")):
    r = _run(f"--model={model}", f"--output_dir={tmp_path / out_dir}", str(tmp_path / "g.png"),
             str(tmp_path / "c.png"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert Image.open(tmp_path / out_dir / "g.png").mode == "L"
    assert Image.open(tmp_path / out_dir / "c.png").mode == "RGB"


def test_unwritable_output_dir(tmp_path, model_dir):
  Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
  blocker = tmp_path / "file"
  blocker.write_text("not a directory")
  r = _run(f"--model={model_dir}", f"--output_dir={blocker / 'out'}", str(tmp_path / "a.png"))
  assert r.returncode == 2 and "cannot create output directory" in r.stderr


def test_ensemble_flag_writes_the_self_ensemble(tmp_path, model_dir):
  img = np.random.default_rng(2).integers(0, 256, (13, 18), dtype=np.uint8)
  Image.fromarray(img).save(tmp_path / "a.png")
  r = _run(f"--model={model_dir}", f"--output_dir={tmp_path / 'o'}", "--ensemble",
           str(tmp_path / "a.png"))
  assert r.returncode == 0, r.stderr[-2000:]
  d = inference.load_denoiser(model_dir)
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "o" / "a.png")),
                                d(img, ensemble=True))
  assert not np.array_equal(d(img, ensemble=True), d(img))


def test_noise_std_tells_a_level_model_and_is_refused_by_a_blind_one(tmp_path, model_dir):
  img = np.random.default_rng(3).integers(0, 256, (24, 30), dtype=np.uint8)
  Image.fromarray(img).save(tmp_path / "a.png")
  r = _run(f"--model={model_dir}", f"--output_dir={tmp_path / 'o'}", "--noise_std=25",
           str(tmp_path / "a.png"))
  assert r.returncode == 2 and "is blind" in r.stderr and "Traceback" not in r.stderr
  level_dir = _tiny_dncnn_weights(tmp_path / "level", 1, level_input=True)
  r = _run(f"--model={level_dir}", f"--output_dir={tmp_path / 'o'}", "--noise_std=25",
           str(tmp_path / "a.png"))
  assert r.returncode == 0, r.stderr[-2000:]
  d = inference.load_denoiser(level_dir)
  assert d.takes_level
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "o" / "a.png")),
                                d(img, noise_std=25.0))


def test_a_broken_weights_folder_is_one_line_and_exit_2(tmp_path, model_dir):
  import shutil
  broken = tmp_path / "broken"
  shutil.copytree(model_dir, broken)
  (broken / "config.json").write_text("{}")
  Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
  r = _run(f"--model={broken}", f"--output_dir={tmp_path / 'o'}", str(tmp_path / "a.png"))
  assert r.returncode == 2 and "not a dbsn-jax weights folder" in r.stderr
  assert "Traceback" not in r.stderr


def _img(path, seed, shape=(12, 14)):
  arr = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
  Image.fromarray(arr).save(path)
  return arr


def test_nothing_is_replaced_that_this_run_did_not_write_and_links_do_not_fool_it(
    tmp_path, model_dir):
  """Issue 18, items 1, 2 and 5, plus missing inputs, FIFOs and stale temporaries."""
  import os
  import tifffile
  d = tmp_path / "d"
  d.mkdir()
  os.symlink(d, tmp_path / "d_link")
  scan = _img(d / "scan.png", 1)
  other = _img(d / "photo.png", 2)  # Never an input: `photo.jpg` would write over it.
  Image.fromarray(np.zeros((12, 14), np.uint8)).save(d / "photo.jpg")
  tifffile.imwrite(d / "stack.tif", np.zeros((5, 16, 16), np.uint8))  # Once a TypeError.
  (d / ".dbsn_tmp_999999999_x.png").write_bytes(b"left by a kill -9")
  f = tmp_path / "f"
  f.mkdir()
  os.mkfifo(f / "pipe.png")  # Opening it would block the run for ever.
  _img(f / "good.png", 3)
  out = _run(f"--model={model_dir}", f"--output_dir={tmp_path / 'd_link'}",
             str(d / "scan.png"), str(d / "*.jpg"), str(d / "stack.tif"),
             str(tmp_path / "missing.png"), str(f))
  assert out.returncode == 1, out.stderr[-3000:]
  assert "Traceback" not in out.stderr
  assert "refusing to write" in out.stderr and "scan.png" in out.stderr  # Through the link.
  assert "photo.png already exists and this run did not write it" in out.stderr
  assert "stack.tif" in out.stderr and "5 pages" in out.stderr
  assert "no such file or pattern" in out.stderr and "missing.png" in out.stderr
  assert "denoised 1 of 4 images" in out.stdout  # good.png; the FIFO was skipped.
  np.testing.assert_array_equal(np.asarray(Image.open(d / "scan.png")), scan)
  np.testing.assert_array_equal(np.asarray(Image.open(d / "photo.png")), other)
  assert (d / "good.png").exists() and not (d / ".dbsn_tmp_999999999_x.png").exists()
  # --overwrite replaces what this run did not write, but still never an input, even
  # one named through a link to the output folder.
  out = _run(f"--model={model_dir}", f"--output_dir={d}", "--overwrite",
             str(d / "photo.jpg"), str(tmp_path / "d_link" / "scan.png"))
  assert out.returncode == 1 and "refusing to write" in out.stderr
  assert "denoised 1 of 2" in out.stdout
  assert not np.array_equal(np.asarray(Image.open(d / "photo.png")), other)
  np.testing.assert_array_equal(np.asarray(Image.open(d / "scan.png")), scan)


def test_device_without_that_device_is_one_line(tmp_path, model_dir):
  if any(dev.platform == "gpu" for dev in jax.devices()) or _has_gpu():
    pytest.skip("this machine has a GPU")
  _img(tmp_path / "a.png", 0)
  r = _run(f"--model={model_dir}", f"--output_dir={tmp_path / 'o'}", "--device=gpu",
           str(tmp_path / "a.png"))
  assert r.returncode == 2 and "--device=gpu: JAX finds no gpu" in r.stderr
  assert "Traceback" not in r.stderr


def _has_gpu():
  try:
    return bool(jax.devices("gpu"))
  except RuntimeError:
    return False
