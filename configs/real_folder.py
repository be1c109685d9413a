"""Your own noisy camera photos, no ground truth: learn a denoiser from them alone.

Stage 1 learns from the photos in FOLDER (4x4 pixel-shuffle down-sampling, one noise
model per photo and Bayer group, guided filter); stage 2 distils into MWCNN with the
clean CBSD432 photos (or your own: --config.stage2.data.clean=folder:PATH), on the
sub-images as stage 1, then the distilled network denoises every photo:
WORKDIR/denoised/NAME.png; WORKDIR/denoised/grid.png shows noisy / stage 1 / stage 2
for the first few, noise_levels.png the learned noise level against intensity.
  dbsn-pipeline --config=configs/real_folder.py:/path/to/noisy --workdir=runs/mine
Append ',cpu' (':/path/to/noisy,cpu') for the 2-core CPU budget. Afterwards:
dbsn_jax.load_denoiser('runs/mine/stage2') or dbsn-denoise --model=runs/mine/stage2.
"""
from dbsn_jax import defaults


def get_config(arg=""):
  folder, _, size = arg.partition(",")
  if not folder:
    raise ValueError("real_folder needs the noisy photo folder: "
                     "--config=configs/real_folder.py:/path/to/noisy[,cpu]")
  config = defaults.real_photos("folder:" + folder)
  if size == "cpu":
    return defaults.real_photos_cpu_budget(config)
  if size:
    raise ValueError(f"real_folder size must be empty or 'cpu', got {size!r}")
  return config
