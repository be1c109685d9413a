"""Every shipped config loads, validates, and keeps the noisy and clean sets disjoint."""
import glob
import importlib.util
import json
import os

import pytest

from dbsn_jax import defaults
from dbsn_jax.train import stage1, stage2
from tests.conftest import REPO

CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "*.py")))
ARGS = {"real_folder.py": ("/photos",)}  # Configs that need a config string.


def _load(path, *args):
  spec = importlib.util.spec_from_file_location("config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(*(args or ARGS.get(os.path.basename(path), ())))


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


@pytest.mark.parametrize("name,arg", [("real_cc15.py", "cpu"), ("real_folder.py", "/p,cpu")])
def test_real_photo_configs_down_sample_with_bayer_groups(name, arg):
  for config in (_load(os.path.join(REPO, "configs", name)),
                 _load(os.path.join(REPO, "configs", name), arg)):
    s1 = config.stage1
    stage1.validate(s1)
    stage2.validate(config.stage2, s1)
    assert (s1.realworld.downsample, s1.realworld.bayer_groups, s1.noise.kind) == (4, True, "none")
    assert s1.bayes.noise_level == "fitted"  # CNN_est's level sits at mu's error floor.
    assert config.stage2.data.patch_size % 4 == 0


def test_real_folder_config_names_its_missing_folder():
  with pytest.raises(ValueError, match="real_folder needs the noisy photo folder"):
    _load(os.path.join(REPO, "configs", "real_folder.py"), "")


def test_stage2_warmup_only_where_measured_to_pay():
  """The gray and the blind-range CPU-budget recipes warm their stage-2 lr up (their
  bundled models were trained so); stage 1 and the unmeasured recipes do not."""
  path = os.path.join(REPO, "configs", "cpu_budget.py")
  for kind in ("gray", "color_range"):
    assert _load(path, kind).stage2.optim.warmup == 0.1
    assert _load(path, kind).stage1.optim.warmup == 0.0
  for kind in ("color", "hetero"):
    assert _load(path, kind).stage2.optim.warmup == 0.0


def test_leaky_units_only_where_measured_to_pay():
  """The blind-range recipe's MWCNN (the bundled color-awgn) has leaky units; the gray
  recipe (measured: no better with them), the unmeasured ones and the paper's keep ReLUs."""
  path = os.path.join(REPO, "configs", "cpu_budget.py")
  assert _load(path, "color_range").stage2.denoiser.activation == "leaky_relu"
  for kind in ("gray", "color", "hetero"):
    assert _load(path, kind).stage2.denoiser.activation == "relu"


def test_blind_range_stage1_is_short_enough_for_the_90_minute_budget():
  """Its stage 2 synthesises PCA-estimated levels, so stage 1 only makes the real pairs'
  targets: 1,500 steps (docs/evaluation.md), the other recipes 2,500."""
  path = os.path.join(REPO, "configs", "cpu_budget.py")
  assert _load(path, "color_range").stage1.train.num_steps == 1500
  assert _load(path, "color_range").stage2.distill.noise_levels == "estimated"
  assert _load(path, "gray").stage1.train.num_steps == 2500


def test_only_the_blind_range_recipe_tells_stage2_the_level():
  """The blind color recipe's stage 2 takes the noise level (its bundled model was
  trained so); single-level recipes need none."""
  path = os.path.join(REPO, "configs", "cpu_budget.py")
  assert _load(path, "color_range").stage2.denoiser.level_input
  for kind in ("gray", "color", "hetero"):
    assert not _load(path, kind).stage2.denoiser.level_input


@pytest.mark.parametrize("name,kind", [("gray-awgn25", "gray"), ("color-awgn", "color_range")])
def test_bundled_models_were_trained_by_their_recipe(name, kind):
  """A bundled model's stage-2 settings equal its CPU-budget recipe's, so the published
  command reproduces it (a recipe change must come with a retrained bundle)."""
  with open(os.path.join(REPO, "dbsn_jax", "pretrained", name, "config.json")) as f:
    bundled = json.load(f)["config"]
  as_json = lambda c: json.loads(json.dumps(c.to_dict()))  # noqa: E731  Tuples as lists.
  recipe = as_json(_load(os.path.join(REPO, "configs", "cpu_budget.py"), kind).stage2)
  default = as_json(defaults.stage2())
  for section in ("denoiser", "distill", "optim"):
    for field, value in recipe[section].items():
      # A field newer than the bundle must keep the default the bundle was trained with.
      expect = bundled[section].get(field, default[section][field])
      assert value == expect, f"{section}.{field}"
  for field in ("patch_size", "batch_size", "real_fraction", "clean", "clean_start"):
    assert bundled["data"][field] == recipe["data"][field], field
  assert bundled["train"]["num_steps"] == recipe["train"]["num_steps"]
  assert bundled["seed"] == recipe["seed"]
