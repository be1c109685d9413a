"""Tiny stage-1 demo on scikit-image's bundled photos: 3 minutes or less on 2 CPU cores.

Gray, AWGN sigma = 25; trains on 11 photos, evaluates on two held-out ones.
"""
from dbsn_jax import defaults


def get_config():
  c = defaults.stage1()
  c.model.features = 16
  c.model.blocks = (1, 1)
  c.data.train = "sample:train"
  c.data.patch_size = 48
  c.data.batch_size = 8
  c.eval.source = "sample:eval"
  c.eval.stop = 0
  c.eval.crop = 256
  c.eval.every_steps = 500
  c.train.num_steps = 1500
  c.train.log_every = 100
  c.train.checkpoint_every = 500
  c.optim.lr = 1e-3
  c.optim.milestones = (0.8,)
  return c
