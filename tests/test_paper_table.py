"""configs/paper/table.py: one valid paper-scale config per row of the paper's tables,
evaluated under the same noise it trains on, and a collected table beside the paper's numbers."""
import importlib.util
import json
import os

import pytest

from dbsn_jax import evaluate
from dbsn_jax.train import stage1, stage2
from tests.conftest import REPO


def _table():
  spec = importlib.util.spec_from_file_location(
      "paper_table", os.path.join(REPO, "configs", "paper", "table.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


TABLE = _table()


@pytest.mark.parametrize("row", list(TABLE.ROWS))
def test_row_config_is_paper_scale_and_matches_its_eval_noise(row):
  config = TABLE.get_config(row)
  stage1.validate(config.stage1)
  stage2.validate(config.stage2, config.stage1)
  assert config.stage1.model.features == 96 and config.stage1.train.num_steps == 180_000
  _, _, sets, setting = TABLE.ROWS[row]
  _, want = evaluate.noise_setting(setting)
  got = config.stage1.noise
  assert got.kind == want.kind
  fields = {"awgn": ("sigma",), "hetero": ("alpha", "delta", "hetero_form"),
            "multivariate": ("mg_scale",)}[got.kind]
  assert all(got[f] == want[f] for f in fields)
  assert all(evaluate.set_channels(s) == config.stage1.channels for s in sets)


def test_every_paper_number_has_a_row():
  covered = {(s, evaluate.noise_setting(n)[0]) for _, _, sets, n in TABLE.ROWS.values()
             for s in sets}
  assert set(TABLE.PAPER) <= covered
  with pytest.raises(ValueError, match="unknown paper row"):
    TABLE.get_config("gray_awgn35")


def test_collect_puts_ours_beside_the_paper(tmp_path):
  out = tmp_path / "gray_awgn25" / "eval"
  out.mkdir(parents=True)
  summary = {m: {"psnr": p, "ssim": 0.8, "num_images": 68}
             for m, p in (("noisy", 20.48), ("stage 1", 27.45), ("stage 2", 28.56))}
  (out / "results.json").write_text(json.dumps({"summary": {"bsd68 awgn25": summary}}))
  table = TABLE.collect(str(tmp_path))
  assert "| gray_awgn25 | bsd68 | awgn25 | 68 | 20.48 | 27.45 | 28.56 | - | 28.57 | 29.12 " \
         "| 29.38 |" in table
  assert "| gray_awgn15 | (not run" in table
