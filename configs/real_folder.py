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
  if size == "cpu":  # The 2-core CPU budget: about 20 + 15 minutes.
    s1, s2 = config.stage1, config.stage2
    # Stage 1: D-BSN width 32, 2 MDC modules per branch, 48x48 x 8 sub-image patches.
    s1.model.features, s1.model.blocks = 32, (2, 2)
    s1.data.patch_size, s1.data.batch_size = 48, 8
    s1.train.num_steps, s1.train.checkpoint_every = 1500, 500
    s1.optim.lr, s1.optim.milestones = 1e-3, (0.6, 0.85)
    s1.eval.every_steps = 500
    # Stage 2: MWCNN (32, 64, 64), 1 conv per level, on sub-images: 8 128x128 patches
    # (32x32 sub-images) a step for 1,250 steps.
    s2.denoiser.widths, s2.denoiser.convs = (32, 64, 64), 1
    s2.data.patch_size, s2.data.batch_size = 128, 8
    s2.train.num_steps, s2.train.checkpoint_every = 1250, 500
    s2.optim.lr, s2.optim.milestones = 1e-3, (0.6, 0.85)
    s2.eval.every_steps = 1250
    return config
  if size:
    raise ValueError(f"real_folder size must be empty or 'cpu', got {size!r}")
  return config
