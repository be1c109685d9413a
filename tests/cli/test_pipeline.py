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
