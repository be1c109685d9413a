"""dbsn-pipeline on a shrunken demo config: both stages, the table, results.json."""
import json
import subprocess
import sys

from tests.conftest import REPO


def test_pipeline_writes_the_table(tmp_path):
  args = ["--config=configs/demo.py", f"--workdir={tmp_path}",
          "--config.stage1.train.num_steps=6", "--config.stage1.model.features=8",
          "--config.stage1.eval.crop=64", "--config.stage2.train.num_steps=4",
          "--config.stage2.denoiser.widths=(8,8,8)", "--config.stage2.data.batch_size=8"]
  out = subprocess.run([sys.executable, "-m", "dbsn_jax.cli.pipeline", *args], cwd=REPO,
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  for row in ("noisy input", "stage 1 (mu)", "stage 1 (Bayes)", "stage 2"):
    assert f"| {row} |" in out.stdout
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["eval_set"] == "sample:eval" and results["num_images"] == 2
  assert set(results["results"]["stage 2"]) == {"psnr", "ssim"}
  # Noisy-input PSNR of sigma=25 noise is about 20 dB: the table holds real numbers.
  assert 19 < results["results"]["noisy input"]["psnr"] < 22
  # The learned noise level against the truth (sigma = 25), averaged and per image.
  ns = results["noise_std"]
  assert abs(ns["true"] - 25.0) < 1e-3 and len(ns["per_image"]) == 2
  assert ns["learned"] > 0 and abs(ns["relative_error"] - (ns["learned"] / 25.0 - 1)) < 1e-3
  assert "learned noise std" in out.stdout


def test_pipeline_on_photos_without_ground_truth_exits_cleanly(tmp_path):
  """real_folder.py on a folder of tiny noisy photos (mixed sizes, PNG and JPEG): both
  stages train, the photos come back denoised with a grid, exit 0."""
  import numpy as np
  from PIL import Image
  rng = np.random.default_rng(0)
  for folder, names in (("noisy", ("a.png", "b.jpg", "c.png")), ("clean", ("d.png", "e.png"))):
    (tmp_path / folder).mkdir()
    for i, name in enumerate(names):
      size = (64 + 8 * i, 72 - 8 * i)
      x = np.clip(0.5 + 0.1 * rng.standard_normal(size + (3,)), 0, 1)
      Image.fromarray(np.round(255 * x).astype(np.uint8)).save(tmp_path / folder / name)
  work = tmp_path / "work"
  args = [f"--config=configs/real_folder.py:{tmp_path}/noisy,cpu", f"--workdir={work}",
          "--config.stage1.train.num_steps=3", "--config.stage1.model.features=8",
          "--config.stage1.model.blocks=(1,1)", "--config.stage1.data.patch_size=12",
          "--config.stage1.data.batch_size=2",
          f"--config.stage2.data.clean=folder:{tmp_path}/clean",
          "--config.stage2.train.num_steps=2", "--config.stage2.denoiser.widths=(8,8,8)",
          "--config.stage2.data.patch_size=32", "--config.stage2.data.batch_size=4"]
  out = subprocess.run([sys.executable, "-m", "dbsn_jax.cli.pipeline", *args], cwd=REPO,
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "denoised photos written to" in out.stdout
  assert sorted(p.name for p in (work / "denoised").iterdir()) == \
      ["a.png", "b.png", "c.png", "grid.png", "noise_levels.png"]
  results = json.loads((work / "results.json").read_text())
  assert results["denoised"] == str(work / "denoised")
  # The learned noise level of every photo, per channel, in results.json and printed.
  levels = results["noise_levels"]
  assert [r["photo"] for r in levels] == ["a", "b", "c"]
  assert all(len(r["std"]) == 3 and all(v > 0 for v in r["std"]) for r in levels)
  assert "learned noise std per photo" in out.stdout and "| b |" in out.stdout
