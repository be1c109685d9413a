"""dbsn-denoise: denoise image files, folders or globs with a trained model.

  dbsn-denoise --model=gray-awgn25 --output_dir=out photos/ scan.tif 'more/*.png'

Writes one image per input into --output_dir with the input's size, bit depth and mode
(8-bit as PNG, 16-bit as TIFF; alpha kept). Never writes over an input (compared by
device and inode, so links and symlinks do not defeat it), and never replaces an
existing file this run did not write unless --overwrite is given. A gray image given
to a color model is denoised as RGB and returned gray; a color image given to a gray
model is denoised channel by channel. Every per-file failure (unreadable, missing,
multi-frame, ...) is reported by name, the rest still processed, and the exit status
is 1 if any input failed.
"""
import glob
import os
import sys
from typing import List, Tuple

from absl import app, flags, logging

from dbsn_jax.cli import common

_MODEL = flags.DEFINE_string("model", "gray-awgn25",
                             "Bundled model name, weights directory or training workdir.")
_OUT = flags.DEFINE_string("output_dir", None, "Directory for the denoised images.")
_TILE = flags.DEFINE_integer("tile", 1024, "Tile side for large images (0: never tile).")
_MAX_PIXELS = flags.DEFINE_integer("max_pixels", 1536 * 1536,
                                   "Images with more pixels are denoised in tiles.")
_DEVICE = flags.DEFINE_enum("device", None, ["cpu", "gpu", "tpu"],
                            "Run on this platform (default: JAX's default).")
_ENSEMBLE = flags.DEFINE_bool(
    "ensemble", False, "Average over the 8 flips and rotations of each image (8x the time).")
_NOISE_STD = flags.DEFINE_float(
    "noise_std", None, "The noise std on the 0-255 scale, for a model trained with "
    "denoiser.level_input (e.g. color-awgn); default: estimated on each image.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Replace existing files in --output_dir that this run did not "
    "write (never an input).")
flags.mark_flags_as_required(["output_dir"])


def expand(inputs) -> Tuple[List[str], List[str]]:
  """(files, problems): files named directly, regular image files inside folders, and
  glob matches, in order; a line for each argument that names nothing readable."""
  from dbsn_jax.data.sources import IMAGE_EXTENSIONS
  files, problems = [], []
  for item in inputs:
    if os.path.isdir(item):
      # Regular files only: opening a FIFO or a device would block the run for ever.
      files += sorted(p for p in (os.path.join(item, f) for f in os.listdir(item))
                      if p.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(p))
    elif os.path.exists(item):
      if os.path.isfile(item):
        files.append(item)
      else:
        problems.append(f"{item} is not a regular file (a FIFO, socket or device?)")
    else:
      matches = sorted(m for m in glob.glob(item) if os.path.isfile(m))
      if not matches:
        problems.append(f"no such file or pattern: {item}")
      files += matches
  return list(dict.fromkeys(os.path.abspath(f) for f in files)), problems


def _identity(path: str):
  """(device, inode) of the file `path` names, following links; None if absent."""
  try:
    st = os.stat(path)
  except OSError:
    return None
  return st.st_dev, st.st_ino


def check_target(target: str, inputs, written, overwrite: bool) -> None:
  """Refuse to write `target` over an input, twice in one run, or, without
  `overwrite`, over a file this run did not write."""
  ident = _identity(target)
  if ident is not None and ident in inputs:
    raise ValueError(f"refusing to write {target} over an input image (choose another "
                     "--output_dir)")
  if target in written:
    raise ValueError(f"{target} was already written from another input with the same name")
  if (os.path.lexists(target) or ident is not None) and not overwrite:
    raise ValueError(f"{target} already exists and this run did not write it; not "
                     "replacing it (pass --overwrite to replace it)")


def denoise_pixels(denoiser, pixels, ensemble=False, noise_std=None):
  """Adapt channels between the image and the model, then denoise."""
  import numpy as np
  kw = {"ensemble": ensemble, "noise_std": noise_std}
  gray_image = pixels.ndim == 2
  if denoiser.channels == 3 and gray_image:
    out = denoiser(np.repeat(pixels[..., None], 3, -1), **kw)
    return np.round(out.astype(np.float64).mean(-1)).astype(pixels.dtype)
  if denoiser.channels == 1 and not gray_image:
    return np.moveaxis(denoiser(np.moveaxis(pixels, -1, 0)[..., None], **kw)[..., 0], 0, -1)
  return denoiser(pixels, **kw)


def _select_device(platform: str):
  """Use `platform`, or exit 2 with one line if JAX has no such device here."""
  import jax
  jax.config.update("jax_platforms", platform)
  try:
    jax.devices()
  except RuntimeError as e:
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    common.fail(f"--device={platform}: JAX finds no {platform} on this machine ({first})")


def main(argv):
  common.setup()
  if _DEVICE.value:
    _select_device(_DEVICE.value)
  from tqdm import tqdm

  from dbsn_jax.data import image_io
  from dbsn_jax.inference import load_denoiser
  files, problems = expand(argv[1:])
  for p in problems:
    logging.error("%s", p)
    print(f"error: {p}", file=sys.stderr)
  if not files:
    common.fail("no input images (give files, folders or glob patterns)")
  out_dir = os.path.abspath(_OUT.value)
  try:
    os.makedirs(out_dir, exist_ok=True)
  except OSError as e:
    common.fail(f"cannot create output directory {out_dir}: {e}")
  if not os.access(out_dir, os.W_OK):
    common.fail(f"output directory {out_dir} is not writable")
  for stale in image_io.remove_stale_temporaries(out_dir):
    logging.warning("removed %s, left by an interrupted earlier run", stale)
  denoiser = common.guard(lambda: load_denoiser(_MODEL.value, tile=_TILE.value,
                                                max_pixels=_MAX_PIXELS.value))
  if _ENSEMBLE.value and not denoiser.dihedral_ok:
    common.fail(f"--ensemble: model {_MODEL.value} ties its noise models to Bayer phases, "
                "which flips and rotations swap")
  if _NOISE_STD.value is not None and not denoiser.takes_level:
    common.fail(f"--noise_std: model {_MODEL.value} is blind (trained without "
                "denoiser.level_input); it takes no noise level")
  if _NOISE_STD.value is not None and not _NOISE_STD.value > 0:
    common.fail(f"--noise_std must be > 0 (0-255 scale), got {_NOISE_STD.value}")
  inputs = {_identity(f) for f in files}
  written, failed = set(), list(problems)
  for path in tqdm(files, desc="denoising", unit="image", file=sys.stderr):
    try:
      pixels, alpha = image_io.read(path)
      stem = os.path.splitext(os.path.basename(path))[0]
      target = os.path.join(out_dir, stem + image_io.output_extension(pixels))
      check_target(target, inputs, written, _OVERWRITE.value)
      image_io.write(target, denoise_pixels(denoiser, pixels, _ENSEMBLE.value,
                                                  _NOISE_STD.value), alpha)
      written.add(target)
    except Exception as e:  # noqa: BLE001 -- one bad file must not stop the batch.
      failed.append(path)
      message = str(e) if isinstance(e, (ValueError, OSError)) else \
          f"{path}: {type(e).__name__}: {e}"
      logging.error("%s", message)
      print(f"error: {message}", file=sys.stderr)
  print(f"denoised {len(written)} of {len(files)} images into {out_dir}")
  if failed:
    print(f"failed: {', '.join(failed)}", file=sys.stderr)
    sys.exit(1)


def run():
  app.run(main, flags_parser=common.parse_flags)


if __name__ == "__main__":
  run()
