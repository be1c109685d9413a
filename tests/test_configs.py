"""Every shipped config loads, validates, and keeps the noisy and clean sets disjoint."""
import glob
import importlib.util
import os

import pytest

from dbsn_jax.train import stage1, stage2
from tests.conftest import REPO

CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "*.py")))


def _load(path):
  spec = importlib.util.spec_from_file_location("config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_is_valid(path):
  config = _load(path)
  s1, s2 = config.stage1, config.stage2
  stage1.validate(s1)
  stage2.validate(s2, s1)
  assert s2.channels == s1.channels
  if s2.data.clean == s1.data.train:  # Same folder: the two halves must not overlap.
    assert s1.data.train_stop and s2.data.clean_start >= s1.data.train_stop


def test_paper_configs_use_the_reference_size():
  config = _load(os.path.join(REPO, "configs", "gray_awgn.py"))
  assert config.stage1.model.features == 96 and tuple(config.stage1.model.blocks) == (8, 8)
  assert tuple(config.stage2.denoiser.widths) == (160, 256, 256)
  assert config.stage1.data.patch_size == 96 and config.stage1.data.batch_size == 8
