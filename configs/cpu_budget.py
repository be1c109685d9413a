"""Stage 1 sized for a 2-core CPU in about 30 minutes: gray AWGN sigma = 25.

Noisy set: the first half of Train400 (noise synthesised on the fly); evaluation on
BSD68. Width 48 and 2 MDC modules per branch (receptive radius 9 and 14) instead of
96 and 8: about 0.65 s per step of 8 64x64 patches on this machine's 2 cores.
"""
from dbsn_jax import defaults


def get_config():
  c = defaults.stage1()
  c.model.features = 48
  c.model.blocks = (2, 2)
  c.noise.sigma = 25.0
  c.data.train = "shared:Train400"
  c.data.train_start, c.data.train_stop = 0, 200
  c.data.patch_size = 64
  c.data.batch_size = 8
  c.eval.source = "shared:BSD68"
  c.eval.stop = 4
  c.eval.crop = 160
  c.eval.every_steps = 500
  c.train.num_steps = 2500
  c.train.log_every = 100
  c.train.checkpoint_every = 500
  c.optim.lr = 1e-3
  c.optim.milestones = (0.6, 0.85)
  return c
