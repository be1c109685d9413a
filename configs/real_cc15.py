"""Real camera noise, CC15 (Nam et al. 2016; paper Table 4), at paper scale.

Stage 1 learns from the 15 noisy CC15 photos themselves on 4x4 pixel-shuffled
sub-images (per-photo, per-Bayer-group CNN_est), guided-filters the reassembled
estimate, and stage 2 distils into MWCNN with the clean CBSD432 photos, on the
sub-images too (distill.domain='subimages'); both are scored on the CC15 pairs.
  dbsn-pipeline --config=configs/real_cc15.py --workdir=runs/cc15
Pass ':cpu' for the 2-core CPU budget. Compare without down-sampling:
  --config.stage1.realworld.downsample=1 --config.stage1.realworld.bayer_groups=False
  --config.stage2.distill.domain=full
"""
from dbsn_jax import defaults


def get_config(size="paper"):
  config = defaults.real_photos("shared:CC15/noisy", eval_clean="shared:CC15/clean",
                                eval_noisy="shared:CC15/noisy")
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
  if size != "paper":
    raise ValueError(f"real_cc15 config string must be 'paper' or 'cpu', got {size!r}")
  return config
