"""TFDS builders for the standard denoising test sets, read from a manual directory.

BSD68, CBSD68, Kodak24, Set12 and McMaster give clean images; CC15 gives real noisy
photographs with their clean (multi-shot mean) references. No network: each builder
reads the usual files from a folder (by default `$DBSN_DATA_DIR/<folder>`, i.e. the
shared data layout; McMaster's 18 TIFFs are user-supplied), checks that exactly the
expected file names are there (a missing or extra file stops the build with a message
naming it), checks modes and sizes, and writes an ArrayRecord dataset that
`tfds.data_source` reads without TensorFlow. Images are stored as lossless PNG bytes.

  from dbsn_jax.data import benchmarks
  ds = benchmarks.data_source("bsd68")                  # builds once, then reads
  ds[0]["image"]  # uint8 (H, W, C); ds[0]["name"]: the file stem; CC15 also "noisy"

or, as an image source spec anywhere in the configs: `tfds:bsd68`, `tfds:cc15:test:noisy`.
"""
import contextlib
import dataclasses
import functools
import io
import os
import sys
from typing import Optional, Tuple

import numpy as np
from PIL import Image

from dbsn_jax.data import files

_BSD_IDS = (
    "101085 101087 102061 103070 105025 106024 108005 108070 108082 109053 119082 12084 "
    "123074 126007 130026 134035 14037 143090 145086 147091 148026 148089 157055 159008 "
    "160068 16077 163085 167062 167083 170057 175032 175043 182053 189080 19021 196073 "
    "197017 208001 210088 21077 216081 219090 220075 223061 227092 229036 236037 24077 "
    "241004 241048 253027 253055 260058 271035 285079 291000 295087 296007 296059 299086 "
    "300091 302008 304034 304074 306005 3096 33039 351093").split()
_CC15 = tuple(f"{cam}_{i}.png" for cam in (
    "5dmark3_iso3200", "d600_iso3200", "d800_iso1600", "d800_iso3200", "d800_iso6400")
              for i in (1, 2, 3))


@dataclasses.dataclass(frozen=True)
class Spec:
  """What a benchmark folder must hold: exact file names, channels, optional size."""
  name: str                           # TFDS name and spec-string name.
  folder: str                         # Default folder under the data dir.
  files: Tuple[str, ...]
  channels: int
  size: Optional[Tuple[int, int]] = None  # (H, W) every image must have (either way round).
  paired: bool = False                # noisy/ and clean/ subfolders with the same names.
  description: str = ""


SPECS = {s.name: s for s in (
    Spec("bsd68", "BSD68", tuple(f"test{i:03d}.png" for i in range(1, 69)), 1,
         description="BSD68 gray test set (paper Table 1), 481x321."),
    Spec("cbsd68", "CBSD68", tuple(f"{i}.png" for i in _BSD_IDS), 3,
         description="CBSD68 color test set (paper Table 2), 481x321."),
    Spec("kodak24", "Kodak24", tuple(f"kodim{i:02d}.png" for i in range(1, 25)), 3,
         (512, 768), description="Kodak24, full 768x512 (paper Table 3)."),
    Spec("set12", "Set12", tuple(f"{i:02d}.png" for i in range(1, 13)), 1,
         description="Set12 gray test set, 256x256 and 512x512."),
    Spec("mcmaster", "McMaster", tuple(f"{i:02d}.tif" for i in range(1, 19)), 3, (500, 500),
         description="McMaster color test set, 18 TIFFs 500x500 (user-supplied)."),
    Spec("cc15", "CC15", _CC15, 3, (512, 512), paired=True,
         description="CC15 real camera noise (Nam et al. 2016), noisy + clean, 512x512."),
)}


def check_folder(spec: Spec, folder: str) -> None:
  """Raise FileNotFoundError / ValueError naming missing or extra image files."""
  subdirs = ("noisy", "clean") if spec.paired else ("",)
  for sub in subdirs:
    path = os.path.join(folder, sub)
    if not os.path.isdir(path):
      raise FileNotFoundError(
          f"{spec.name}: folder {path} does not exist; put the {len(spec.files)} files "
          f"{_short(spec.files)} there (see dbsn_jax/data/benchmarks.py)")
    present = {f for f in os.listdir(path)
               if f.lower().endswith(files.IMAGE_EXTENSIONS)
               and os.path.isfile(os.path.join(path, f))}
    missing = sorted(set(spec.files) - present)
    extra = sorted(present - set(spec.files))
    if missing or extra:
      parts = [f"missing {len(missing)}: {_short(missing)}"] if missing else []
      parts += [f"unexpected {len(extra)}: {_short(extra)}"] if extra else []
      raise ValueError(f"{spec.name}: {path} must hold exactly the {len(spec.files)} files "
                       f"{_short(spec.files)}; {'; '.join(parts)}")


def _short(names, n=4):
  names = list(names)
  return ", ".join(names) if len(names) <= n + 1 else (
      f"{', '.join(names[:n])}, ... {names[-1]}")


def read_png_bytes(spec: Spec, path: str) -> bytes:
  """Decode, check mode and size, and re-encode one file as lossless 8-bit PNG."""
  try:
    with Image.open(path) as im:
      im.load()
      arr = np.asarray(im)
  except Exception as e:  # PIL raises many types for corrupt files.
    raise ValueError(f"{spec.name}: cannot read {path}: {e}") from e
  if arr.dtype != np.uint8:
    raise ValueError(f"{spec.name}: {path} is {arr.dtype}, expected 8-bit")
  c = 1 if arr.ndim == 2 else arr.shape[-1]
  if c != spec.channels:
    raise ValueError(f"{spec.name}: {path} has {c} channels, expected {spec.channels}")
  if spec.size and tuple(sorted(arr.shape[:2])) != tuple(sorted(spec.size)):
    raise ValueError(f"{spec.name}: {path} is {arr.shape[1]}x{arr.shape[0]}, expected "
                     f"{spec.size[1]}x{spec.size[0]}")
  buf = io.BytesIO()
  Image.fromarray(arr).save(buf, format="PNG")
  return buf.getvalue()


@functools.lru_cache(maxsize=None)
def _builder_class():
  """The TFDS base class (imported lazily: tensorflow_datasets is slow to import)."""
  import tensorflow_datasets as tfds

  class FolderBenchmark(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """One test split of images (and CC15's noisy twins) from `SPEC`'s manual folder."""
    SPEC: Spec = None
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Files of the shared data layout, re-encoded as PNG."}

    @classmethod
    def manual_instructions(cls):
      s = cls.SPEC
      where = ("subfolders noisy/ and clean/, each with" if s.paired else "a folder with")
      return (f"Put {where} the {len(s.files)} files {_short(s.files)} in the manual "
              f"directory (default $DBSN_DATA_DIR/{s.folder}).")

    def _info(self):
      feats = {"image": tfds.features.Image(shape=(None, None, self.SPEC.channels)),
               "name": tfds.features.Text()}
      if self.SPEC.paired:
        feats["noisy"] = tfds.features.Image(shape=(None, None, self.SPEC.channels))
      # File order kept (no shuffling): per-image seeded noise matches shared:NAME.
      return tfds.core.DatasetInfo(builder=self, description=self.SPEC.description,
                                   disable_shuffling=True,
                                   features=tfds.features.FeaturesDict(feats))

    def _split_generators(self, dl_manager):
      folder = os.fspath(dl_manager._manual_dir)  # Checked by us: clearer than TFDS's.
      check_folder(self.SPEC, folder)
      return {"test": self._generate_examples(folder)}

    def _generate_examples(self, folder):
      s = self.SPEC
      for f in s.files:
        stem = os.path.splitext(f)[0]
        if s.paired:
          yield stem, {"image": read_png_bytes(s, os.path.join(folder, "clean", f)),
                       "noisy": read_png_bytes(s, os.path.join(folder, "noisy", f)),
                       "name": stem}
        else:
          yield stem, {"image": read_png_bytes(s, os.path.join(folder, f)), "name": stem}

  return FolderBenchmark


_CLASSES = {}


def builder_class(name: str):
  """The TFDS builder class of a benchmark (registered under its name, e.g. 'bsd68')."""
  if name not in SPECS:
    raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(SPECS)}")
  if name not in _CLASSES:
    attrs = {"name": name, "SPEC": SPECS[name], "MANUAL_DOWNLOAD_INSTRUCTIONS": None,
             "__module__": __name__}
    try:
      cls = type(name.capitalize(), (_builder_class(),), attrs)
    except ValueError:  # Already registered (a redefined spec): keep the first name.
      cls = type(name.capitalize(), (_builder_class(),), attrs, skip_registration=True)
    cls.MANUAL_DOWNLOAD_INSTRUCTIONS = cls.manual_instructions()
    _CLASSES[name] = cls
  return _CLASSES[name]


def register_all():
  """Define (and so register with TFDS) every builder, e.g. before `tfds build`."""
  return [builder_class(n) for n in SPECS]


def default_data_dir() -> Optional[str]:
  """Where built benchmarks go: $DBSN_TFDS_DIR, else TFDS's default ($TFDS_DATA_DIR)."""
  return os.environ.get("DBSN_TFDS_DIR") or None


def build(name_or_class, data_dir: Optional[str] = None, manual_dir: Optional[str] = None):
  """Prepare a benchmark (once; later calls only read) and return its builder.

  `name_or_class`: a name in SPECS or a FolderBenchmark subclass (tests use a 3-file
  spec). `manual_dir` defaults to the data dir's folder for the set.
  """
  import tensorflow_datasets as tfds
  cls = builder_class(name_or_class) if isinstance(name_or_class, str) else name_or_class
  manual_dir = manual_dir or os.path.join(files.data_dir(), cls.SPEC.folder)
  builder = cls(data_dir=data_dir or default_data_dir(), file_format="array_record")
  if not builder.is_prepared():
    check_folder(cls.SPEC, manual_dir)  # Before TFDS creates anything.
    with contextlib.redirect_stdout(sys.stderr):  # TFDS prints progress; stdout is for tables.
      builder.download_and_prepare(
          download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder


def data_source(name: str, split: str = "test", data_dir: Optional[str] = None,
                manual_dir: Optional[str] = None):
  """Random-access records of a benchmark (built on first use)."""
  return build(name, data_dir, manual_dir).as_data_source(split)
