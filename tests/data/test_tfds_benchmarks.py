"""TFDS benchmark builders: read a manual folder, keep file order, refuse wrong folders."""
import os

import numpy as np
import pytest
from PIL import Image

from dbsn_jax.data import benchmarks, sources

FILES = ("a.png", "b.png", "c.png")


def _toy(paired=False):
  """A 3-file benchmark builder (not registered with TFDS: tests define it repeatedly)."""
  spec = benchmarks.Spec("toy_pairs" if paired else "toy", "Toy", FILES, 3, paired=paired)
  base = benchmarks._builder_class()
  return type("Toy", (base,), {"name": spec.name, "SPEC": spec,
                               "MANUAL_DOWNLOAD_INSTRUCTIONS": "three PNGs"},
              skip_registration=True)


def _write(folder, names, seed=0, shape=(6, 5, 3)):
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(seed)
  arrays = {}
  for n in names:
    arrays[n] = rng.integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(arrays[n].squeeze()).save(os.path.join(folder, n))
  return arrays


def test_builder_reads_the_folder_in_file_order(tmp_path):
  arrays = _write(tmp_path / "manual", FILES)
  builder = benchmarks.build(_toy(), str(tmp_path / "tfds"), str(tmp_path / "manual"))
  ds = builder.as_data_source("test")
  assert len(ds) == 3
  for i, f in enumerate(FILES):  # Not shuffled: per-image seeded noise depends on order.
    rec = ds[i]
    assert rec["name"] in (f[0], f[0].encode())
    np.testing.assert_array_equal(rec["image"], arrays[f])
  # A second call reads the prepared dataset, even with the manual folder gone.
  for f in FILES:
    os.remove(tmp_path / "manual" / f)
  assert len(benchmarks.build(_toy(), str(tmp_path / "tfds")).as_data_source("test")) == 3


def test_paired_builder_holds_noisy_and_clean(tmp_path):
  clean = _write(tmp_path / "m" / "clean", FILES, 1)
  noisy = _write(tmp_path / "m" / "noisy", FILES, 2)
  ds = benchmarks.build(_toy(True), str(tmp_path / "tfds"), str(tmp_path / "m"))
  rec = ds.as_data_source("test")[2]
  np.testing.assert_array_equal(rec["image"], clean["c.png"])
  np.testing.assert_array_equal(rec["noisy"], noisy["c.png"])


def test_missing_extra_and_wrong_files_are_named(tmp_path):
  _write(tmp_path / "m", FILES[:2])
  with pytest.raises(ValueError, match=r"missing 1: c\.png"):
    benchmarks.build(_toy(), str(tmp_path / "tfds"), str(tmp_path / "m"))
  _write(tmp_path / "m", ("c.png", "d.png"))
  with pytest.raises(ValueError, match=r"unexpected 1: d\.png"):
    benchmarks.build(_toy(), str(tmp_path / "tfds"), str(tmp_path / "m"))
  os.remove(tmp_path / "m" / "d.png")
  _write(tmp_path / "m", ("b.png",), shape=(6, 5))  # Gray in a color set.
  with pytest.raises(ValueError, match=r"b\.png has 1 channels, expected 3"):
    benchmarks.build(_toy(), str(tmp_path / "tfds"), str(tmp_path / "m"))
  with pytest.raises(FileNotFoundError, match="does not exist"):
    benchmarks.build(_toy(), str(tmp_path / "tfds"), str(tmp_path / "nowhere"))
  with pytest.raises(FileNotFoundError, match="noisy"):
    benchmarks.build(_toy(True), str(tmp_path / "tfds"), str(tmp_path / "m"))
  with pytest.raises(ValueError, match="unknown benchmark"):
    benchmarks.build("bsd500", str(tmp_path / "tfds"))


def test_spec_string_equals_the_shared_folder(tmp_path, monkeypatch):
  """tfds:set12 (built from $DBSN_DATA_DIR/Set12) gives the same images, names and
  order as the shared:Set12 fast path."""
  _write(tmp_path / "data" / "Set12", benchmarks.SPECS["set12"].files, shape=(7, 9))
  monkeypatch.setenv("DBSN_DATA_DIR", str(tmp_path / "data"))
  monkeypatch.setenv("DBSN_TFDS_DIR", str(tmp_path / "tfds"))
  via_tfds = sources.load("tfds:set12", 1, 2, 5)
  direct = sources.load("shared:Set12", 1, 2, 5)
  assert via_tfds.names == direct.names == ["03", "04", "05"]
  for a, b in zip(via_tfds.images, direct.images):
    np.testing.assert_array_equal(a, b)


def test_image_feature_choice():
  import tensorflow_datasets as tfds

  class Info:
    def __init__(self, **feats):
      self.features = feats

  class Src:
    def __init__(self, **feats):
      self.dataset_info = Info(**feats)

  img = tfds.features.Image(shape=(None, None, 3))
  assert sources._image_feature("x", Src(image=img, label=None)) == "image"
  assert sources._image_feature("x", Src(hr=img, name=None)) == "hr"
  with pytest.raises(ValueError, match="tfds:div2k:SPLIT:hr"):
    sources._image_feature("div2k", Src(hr=img, lr=img))


@pytest.mark.skipif(not os.path.isdir(os.path.join(sources.data_dir(), "BSD68")),
                    reason="shared data not present")
def test_shared_folders_hold_exactly_the_expected_files():
  for name, spec in benchmarks.SPECS.items():
    folder = os.path.join(sources.data_dir(), spec.folder)
    if name == "mcmaster" and not os.path.isdir(folder):
      continue  # User-supplied.
    benchmarks.check_folder(spec, folder)
