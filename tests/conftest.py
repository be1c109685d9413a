"""Shared test fixtures: tiny configs that run in seconds on a CPU."""
import os

import pytest

from dbsn_jax import defaults

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_stage1_config(**overrides):
  """A stage-1 config small enough for unit tests (sample images, 8 features)."""
  c = defaults.stage1()
  c.model.features = 8
  c.model.blocks = (1, 1)
  c.data.train = "sample:astronaut,coins,brick"
  c.data.patch_size = 24
  c.data.batch_size = 4
  c.data.num_threads = 1
  c.eval.source = "sample:camera"
  c.eval.stop = 0
  c.eval.crop = 48
  c.eval.every_steps = 1000
  c.train.num_steps = 6
  c.train.log_every = 2
  c.train.checkpoint_every = 3
  c.optim.lr = 1e-3
  return apply_overrides(c, overrides)


def apply_overrides(config, overrides):
  """Set dotted fields, e.g. {'model.features': 8}, on a ConfigDict; returns it."""
  for k, v in overrides.items():
    node = config
    *parents, leaf = k.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = v
  return config


@pytest.fixture
def tiny_config():
  return tiny_stage1_config
