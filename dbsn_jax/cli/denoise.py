"""dbsn-denoise: denoise image files, folders or globs with a trained model.

  dbsn-denoise --model=gray-awgn25 --output_dir=out photos/ scan.tif 'more/*.png'

Writes one image per input into --output_dir with the input's size, bit depth and mode
(8-bit as PNG, 16-bit as TIFF; alpha kept). Never writes over an input. A gray image
given to a color model is denoised as RGB and returned gray; a color image given to a
gray model is denoised channel by channel. Unreadable files are reported by name, the
rest still processed, and the exit status is 1 if any file failed.
"""
import glob
import os
import sys

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
flags.mark_flags_as_required(["output_dir"])


def expand(inputs):
  """Files named directly, image files inside folders, and glob matches, in order."""
  from dbsn_jax.data.sources import IMAGE_EXTENSIONS
  files = []
  for item in inputs:
    if os.path.isdir(item):
      files += sorted(os.path.join(item, f) for f in os.listdir(item)
                      if f.lower().endswith(IMAGE_EXTENSIONS))
    elif os.path.exists(item):
      files.append(item)
    else:
      matches = sorted(glob.glob(item))
      if not matches:
        logging.error("no such file or pattern: %s", item)
      files += matches
  return list(dict.fromkeys(os.path.abspath(f) for f in files))


def denoise_pixels(denoiser, pixels, ensemble=False):
  """Adapt channels between the image and the model, then denoise."""
  import numpy as np
  gray_image = pixels.ndim == 2
  if denoiser.channels == 3 and gray_image:
    out = denoiser(np.repeat(pixels[..., None], 3, -1), ensemble=ensemble)
    return np.round(out.astype(np.float64).mean(-1)).astype(pixels.dtype)
  if denoiser.channels == 1 and not gray_image:
    return np.moveaxis(denoiser(np.moveaxis(pixels, -1, 0)[..., None],
                                ensemble=ensemble)[..., 0], 0, -1)
  return denoiser(pixels, ensemble=ensemble)


def main(argv):
  common.setup()
  if _DEVICE.value:
    import jax
    jax.config.update("jax_platforms", _DEVICE.value)
  from tqdm import tqdm

  from dbsn_jax.data import image_io
  from dbsn_jax.inference import load_denoiser
  files = expand(argv[1:])
  if not files:
    common.fail("no input images (give files, folders or glob patterns)")
  out_dir = os.path.abspath(_OUT.value)
  try:
    os.makedirs(out_dir, exist_ok=True)
  except OSError as e:
    common.fail(f"cannot create output directory {out_dir}: {e}")
  if not os.access(out_dir, os.W_OK):
    common.fail(f"output directory {out_dir} is not writable")
  denoiser = common.guard(lambda: load_denoiser(_MODEL.value, tile=_TILE.value,
                                                max_pixels=_MAX_PIXELS.value))
  if _ENSEMBLE.value and not denoiser.dihedral_ok:
    common.fail(f"--ensemble: model {_MODEL.value} ties its noise models to Bayer phases, "
                "which flips and rotations swap")
  inputs, written, failed = set(files), set(), []
  for path in tqdm(files, desc="denoising", unit="image", file=sys.stderr):
    try:
      pixels, alpha = image_io.read(path)
      stem = os.path.splitext(os.path.basename(path))[0]
      target = os.path.join(out_dir, stem + image_io.output_extension(pixels))
      if target in inputs:
        raise ValueError(f"refusing to write {target} over an input image (choose "
                         "another --output_dir)")
      if target in written:
        raise ValueError(f"{target} was already written from another input with the same name")
      image_io.write(target, denoise_pixels(denoiser, pixels, _ENSEMBLE.value), alpha)
      written.add(target)
    except (ValueError, OSError) as e:
      failed.append(path)
      logging.error("%s", e)
      print(f"error: {e}", file=sys.stderr)
  print(f"denoised {len(written)} of {len(files)} images into {out_dir}")
  if failed:
    print(f"failed: {', '.join(failed)}", file=sys.stderr)
    sys.exit(1)


def run():
  app.run(main, flags_parser=common.parse_flags)


if __name__ == "__main__":
  run()
