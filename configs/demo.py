"""Tiny pipeline on scikit-image's bundled photos: minutes on 2 CPU cores.

Gray, AWGN sigma = 25. Stage 1 learns from 6 noisy photos; stage 2 distils into the
CPU-budget MWCNN using 5 other (clean) photos; both are evaluated on 2 held-out photos.
  dbsn-pipeline --config=configs/demo.py --workdir=/tmp/dbsn_demo
"""
from dbsn_jax import defaults


def get_config():
  s1 = defaults.stage1()
  s1.model.features = 16
  s1.model.blocks = (1, 1)
  s1.data.train = "sample:train"
  s1.data.train_start, s1.data.train_stop = 0, 6
  s1.data.patch_size = 48
  s1.data.batch_size = 8
  s1.eval.source = "sample:eval"
  s1.eval.stop = 0
  s1.eval.crop = 256
  s1.eval.every_steps = 500
  s1.train.num_steps = 1500
  s1.train.checkpoint_every = 500
  s1.optim.lr = 1e-3
  s1.optim.milestones = (0.8,)

  s2 = defaults.stage2()
  s2.denoiser.widths = (32, 64, 64)
  s2.denoiser.convs = 1
  s2.data.clean = "sample:train"
  s2.data.clean_start, s2.data.clean_stop = 6, 0
  s2.data.patch_size = 48
  s2.data.batch_size = 16
  s2.data.target_margin = 8
  s2.eval.every_steps = 500
  s2.train.num_steps = 2000
  s2.train.checkpoint_every = 500
  s2.optim.lr = 1e-3
  s2.optim.milestones = (0.8,)
  return defaults.workflow(s1, s2)
