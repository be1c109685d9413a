"""Image decoding: bit depths, modes, channel conversion, clear errors."""
import os

import numpy as np
import pytest
from PIL import Image

from dbsn_jax.data import sources


def test_bit_depths_and_modes(tmp_path):
  rng = np.random.default_rng(0)
  g16 = rng.integers(0, 65536, (9, 7), dtype=np.uint16)
  Image.fromarray(g16).save(tmp_path / "g16.png")
  rgb = rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)
  Image.fromarray(rgb).save(tmp_path / "rgb.png")
  Image.fromarray(np.dstack([rgb, np.full((9, 7), 255, np.uint8)])).save(tmp_path / "rgba.png")
  Image.fromarray(rgb).convert("P").save(tmp_path / "pal.png")
  out = sources.load_image(str(tmp_path / "g16.png"), 1)
  np.testing.assert_allclose(out[..., 0], g16 / 65535.0, atol=1e-6)
  np.testing.assert_allclose(sources.load_image(str(tmp_path / "rgb.png"), 3), rgb / 255.0,
                             atol=1e-6)
  np.testing.assert_allclose(sources.load_image(str(tmp_path / "rgba.png"), 3), rgb / 255.0,
                             atol=1e-6)
  assert sources.load_image(str(tmp_path / "pal.png"), 3).shape == (9, 7, 3)
  gray = sources.load_image(str(tmp_path / "rgb.png"), 1)[..., 0]
  np.testing.assert_allclose(gray, rgb @ np.array([0.299, 0.587, 0.114]) / 255.0, atol=1e-5)


def test_16bit_rgb_tiff(tmp_path):
  import tifffile
  arr = np.random.default_rng(0).integers(0, 65536, (6, 5, 3), dtype=np.uint16)
  tifffile.imwrite(tmp_path / "a.tif", arr)
  np.testing.assert_allclose(sources.load_image(str(tmp_path / "a.tif"), 3), arr / 65535.0,
                             atol=1e-6)


def test_corrupt_file_is_named_and_skipped(tmp_path):
  Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "good.png")
  (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
  (tmp_path / "notes.txt").write_text("not an image")
  with pytest.raises(ValueError, match="bad.png"):
    sources.load_image(str(tmp_path / "bad.png"), 1)
  with pytest.warns(UserWarning, match="bad.png"):
    s = sources.load_folder(str(tmp_path), 1)
  assert s.names == ["good"]


def test_missing_and_empty_folders(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    sources.load(f"folder:{tmp_path}/nope", 1)
  with pytest.raises(FileNotFoundError, match="has no"):
    sources.load(f"folder:{tmp_path}", 1)
  with pytest.raises(ValueError, match="unknown image source"):
    sources.load("imagenet", 1)


def test_sample_images_need_no_download():
  s = sources.load("sample:eval", 3)
  assert s.names == list(sources.SAMPLE_EVAL)
  assert all(im.shape[-1] == 3 and im.dtype == np.float32 for im in s.images)
  assert all(0.0 <= im.min() and im.max() <= 1.0 for im in s.images)


def test_shared_data_slices():
  if not os.path.isdir(os.path.join(sources.data_dir(), "Train400")):
    pytest.skip("shared data not present")
  first = sources.load("shared:Train400", 1, 0, 3)
  second = sources.load("shared:Train400", 1, 200, 203)
  assert len(first) == 3 and not set(first.names) & set(second.names)


def test_exif_rotated_jpeg_is_turned_upright(tmp_path):
  img = np.zeros((10, 30, 3), np.uint8)
  img[:, :5] = 255  # A bright band on the left.
  exif = Image.Exif()
  exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display.
  Image.fromarray(img).save(tmp_path / "r.jpg", exif=exif, quality=95)
  out = sources.load_image(str(tmp_path / "r.jpg"), 3)
  assert out.shape == (30, 10, 3)  # Upright: portrait.
  assert out[:5].mean() > 0.8 and out[-5:].mean() < 0.2  # The band is now on top.


def test_gray_and_color_are_converted():
  gray = np.random.default_rng(0).random((4, 5, 1)).astype(np.float32)
  np.testing.assert_array_equal(sources.to_channels(gray, 3), np.repeat(gray, 3, -1))
  rgb = np.repeat(gray, 3, -1)
  np.testing.assert_allclose(sources.to_channels(rgb, 1), gray, atol=1e-6)


def test_one_pixel_image(tmp_path):
  Image.fromarray(np.full((1, 1), 77, np.uint8)).save(tmp_path / "dot.png")
  from dbsn_jax.data import input_pipeline
  img = sources.load_image(str(tmp_path / "dot.png"), 1)
  it = input_pipeline.train_iterator(input_pipeline.train_dataset([img], 8, 2, seed=0), 1)
  np.testing.assert_allclose(next(it)["image"], 77 / 255, atol=1e-6)


def test_written_images_get_the_umask_mode_not_the_temp_files(tmp_path):
  import stat
  from dbsn_jax.data import image_io
  old = os.umask(0o022)
  try:
    image_io.write(str(tmp_path / "a.png"), np.zeros((4, 4), np.uint8))
  finally:
    os.umask(old)
  assert stat.S_IMODE(os.stat(tmp_path / "a.png").st_mode) == 0o644


def _png16(path, arr):
  import cv2
  bgr = arr[..., [2, 1, 0, 3][:arr.shape[-1]]] if arr.ndim == 3 else arr
  assert cv2.imwrite(str(path), bgr)


@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_color_pngs_keep_their_depth(tmp_path, channels):
  # Pillow opens 16-bit RGB / RGBA PNGs as 8-bit, silently: issue 18, item 6.
  from dbsn_jax.data import image_io
  arr = np.random.default_rng(channels).integers(0, 65536, (9, 13, channels)).astype(np.uint16)
  _png16(tmp_path / "deep.png", arr)
  pixels, alpha = image_io.read(str(tmp_path / "deep.png"))
  assert pixels.dtype == np.uint16
  np.testing.assert_array_equal(pixels, arr[..., :3])
  if channels == 4:
    np.testing.assert_array_equal(alpha, arr[..., 3])
  img = sources.load_image(str(tmp_path / "deep.png"), 3)  # Training reads them too.
  if channels == 3:
    np.testing.assert_allclose(img, arr / 65535.0, atol=1e-6)
  else:
    a = arr[..., 3:] / 65535.0
    np.testing.assert_allclose(img, arr[..., :3] / 65535.0 * a + 1 - a, atol=1e-6)


def test_stacks_animations_and_empty_images_are_named_refusals(tmp_path):
  import tifffile
  from dbsn_jax.data import image_io
  tifffile.imwrite(tmp_path / "stack.tif", np.zeros((5, 16, 16), np.uint16))
  frames = [Image.fromarray(np.full((8, 8), v, np.uint8)) for v in (0, 255)]
  frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
  tifffile.imwrite(tmp_path / "empty.tif", np.zeros((0, 7), np.uint8))
  for name, why in (("stack.tif", "5 pages"), ("anim.gif", "2 frames"), ("empty.tif", "")):
    with pytest.raises(ValueError, match=f"{name}.*{why}|{why}.*{name}" if why else name):
      image_io.read(str(tmp_path / name))
  with pytest.raises(ValueError, match="stack.tif.*5 pages"):
    sources.load_image(str(tmp_path / "stack.tif"), 1)


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
  from dbsn_jax.data import image_io
  dead = _dead_pid()
  stale = tmp_path / f".dbsn_tmp_{dead}_abc.png"
  live = tmp_path / f".dbsn_tmp_{os.getpid()}_def.png"  # A write in progress.
  mine = tmp_path / ".tmp_user.png"  # Not our pattern: never touched.
  for p in (stale, live, mine):
    p.write_bytes(b"partial")
  assert image_io.remove_stale_temporaries(str(tmp_path)) == [str(stale)]
  assert not stale.exists() and live.exists() and mine.exists()


def _dead_pid():
  import subprocess
  p = subprocess.Popen(["true"])
  p.wait()
  return p.pid
