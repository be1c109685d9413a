"""Write a camera-noise development set: noisy / clean pairs with a known noise level.

Clean photos -> RGGB mosaic -> Poisson-Gaussian noise (var = a x + b) -> demosaic ->
colour matrix -> 8-bit PNGs (dbsn_jax.data.camera_sim). Writes OUT/noisy/NAME.png,
OUT/clean/NAME.png (the noise-free pipeline output) and OUT/noise_std.json with
std(noisy - clean) per photo on the 0-255 scale.
  python tools/camera_sim.py --source=shared:Kodak24 --a=0.005 --b=4e-5 --output_dir=runs/kodak_cam
Then e.g. dbsn-pipeline --config=configs/real_folder.py:runs/kodak_cam/noisy,cpu
  --config.stage1.eval.source=folder:runs/kodak_cam/clean
  --config.stage1.eval_noisy_source=folder:runs/kodak_cam/noisy
"""
import numpy as np
from absl import app, flags

from dbsn_jax.data import camera_sim

_SOURCE = flags.DEFINE_string("source", "sample:train", "Clean RGB photos (a source spec).")
_OUT = flags.DEFINE_string("output_dir", None, "Where to write noisy/, clean/ and the levels.")
_A = flags.DEFINE_float("a", 0.005, "Shot-noise gain: variance a * x on the [0, 1] scale.")
_B = flags.DEFINE_float("b", 4e-5, "Read-noise variance on the [0, 1] scale.")
_SEED = flags.DEFINE_integer("seed", 0, "Noise seed (photo i uses seed + i).")
_LIMIT = flags.DEFINE_integer("limit", 0, "Only the first N photos (0: all).")
flags.mark_flag_as_required("output_dir")


def main(argv):
  del argv
  levels = camera_sim.write_set(_SOURCE.value, _OUT.value, _A.value, _B.value, _SEED.value,
                                _LIMIT.value)
  print(f"{len(levels)} photos to {_OUT.value}; noise std (0-255) mean "
        f"{np.mean(list(levels.values())):.2f}, range {min(levels.values()):.2f}-"
        f"{max(levels.values()):.2f}")


if __name__ == "__main__":
  app.run(main)
