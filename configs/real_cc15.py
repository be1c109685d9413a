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
  if size == "cpu":
    return defaults.real_photos_cpu_budget(config)
  if size != "paper":
    raise ValueError(f"real_cc15 config string must be 'paper' or 'cpu', got {size!r}")
  return config
