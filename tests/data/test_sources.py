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
  from dbsn_jax.data import pipeline
  img = sources.load_image(str(tmp_path / "dot.png"), 1)
  it = pipeline.train_iterator(pipeline.train_dataset([img], 8, 2, seed=0), 1)
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
