"""dbsn-eval on a tiny trained stage-1 workdir and the bundled stage-2 model."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from dbsn_jax import evaluate
from dbsn_jax.data import sources
from dbsn_jax.train import stage1
from tests.conftest import REPO, tiny_stage1_config


def _eval(*args):
  return subprocess.run([sys.executable, "-m", "dbsn_jax.cli.eval", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=600)


def test_eval_writes_table_csv_json_and_pictures(tmp_path):
  wd = str(tmp_path / "s1")
  stage1.train_and_evaluate(tiny_stage1_config(**{
      "train.num_steps": 2, "train.checkpoint_every": 2, "eval.every_steps": 2}), wd)
  # Training wrote the same kind of grid to TensorBoard at its evaluation.
  events = b"".join(p.read_bytes() for p in (tmp_path / "s1" / "tensorboard").iterdir())
  assert b"eval/grid" in events
  images = tmp_path / "set"
  images.mkdir()
  for name in ("coins", "camera"):
    img = sources.load(f"sample:{name}", 1).images[0][:56, :64, 0]
    Image.fromarray(np.round(img * 255).astype(np.uint8)).save(images / f"{name}.png")
  out = tmp_path / "out"
  run = _eval(f"--models=stage 1={wd},stage 2=gray-awgn25", f"--sets=folder:{images}",
              "--noise=25", f"--output_dir={out}", "--grid_images=1", "--ensemble")
  assert run.returncode == 0, run.stderr[-3000:]
  bm3d = ["BM3D"] if evaluate.bm3d_available() else []
  methods = ["noisy", "stage 1", "stage 1 x8", "stage 2", "stage 2 x8", *bm3d]
  assert "| set | noise | images | " + " | ".join(methods) + " |" in run.stdout
  assert f"| folder:{images} | awgn25 | 2 |" in run.stdout
  assert (out / "results.md").read_text().strip() == run.stdout.strip()
  with open(out / "results.csv") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 2 * len(methods)  # Images x methods.
  assert {r["image"] for r in rows} == {"camera", "coins"}
  results = json.loads((out / "results.json").read_text())
  summary = results["summary"][f"folder:{images} awgn25"]
  # The table's means are the means of the per-image rows; sigma=25 noise is ~20 dB.
  noisy = [float(r["psnr"]) for r in rows if r["method"] == "noisy" and r["noise"] == "awgn25"]
  assert abs(summary["noisy"]["psnr"] - np.mean(noisy)) < 1e-9 and 19 < np.mean(noisy) < 22
  assert summary["stage 2"]["psnr"] > summary["noisy"]["psnr"] + 3  # Bundled model denoises.
  # Averaging the bundled model over the 8 flips and rotations helps.
  assert summary["stage 2 x8"]["psnr"] > summary["stage 2"]["psnr"]
  assert results["models"]["stage 1"]["kind"] == "stage1"
  # Stage 1 is scored at the image's own size, as training's evaluation scores it (size
  # buckets would pad 56x64 to 64x64, and CNN_est averages over the padding).
  _, model, params = stage1.load(wd)
  ref = stage1.evaluate(params, model, evaluate.load_case(f"folder:{images}", "25", 1))
  assert abs(summary["stage 1"]["psnr"] - ref["psnr_bayes"]) < 1e-3
  for name in ("grid_folder", "nlf_folder"):
    assert any(p.startswith(name) and p.endswith("awgn25.png") for p in os.listdir(out))
  grid = Image.open(next(out.glob("grid_*awgn25.png")))
  assert grid.size[0] > 500


def test_bad_inputs_exit_with_one_line(tmp_path):
  run = _eval("--models=gray-awgn25", "--sets=bsd68", "--noise=poisson",
              f"--output_dir={tmp_path}")
  assert run.returncode == 2 and "unknown noise setting 'poisson'" in run.stderr
  assert "Traceback" not in run.stderr
  run = _eval("--models=no/such/model", f"--output_dir={tmp_path}")
  assert run.returncode == 2 and "no model 'no/such/model'" in run.stderr
  run = _eval("--models=gray-awgn25", "--sets=cbsd68", f"--output_dir={tmp_path}")
  assert run.returncode == 2 and "set cbsd68 is color" in run.stderr
