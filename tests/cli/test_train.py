"""dbsn-train end to end on the demo config, shortened, in a temporary workdir."""
import os
import subprocess
import sys

from tests.conftest import REPO


def _run(*args):
  return subprocess.run([sys.executable, "-m", "dbsn_jax.cli.train", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=300)


def test_demo_config_runs_end_to_end(tmp_path):
  wd = tmp_path / "wd"
  out = _run("--config=configs/demo.py", f"--workdir={wd}", "--config.stage1.train.num_steps=20",
             "--config.stage1.eval.every_steps=10", "--config.stage1.model.features=8",
             "--config.stage1.eval.crop=64")
  assert out.returncode == 0, out.stderr[-2000:]
  assert "| stage 1 |" in out.stdout and "psnr_bayes" in out.stdout
  assert os.path.isdir(wd / "checkpoints" / "20")
  assert os.path.isfile(wd / "config.json")


def test_bad_setting_exits_with_a_clear_message(tmp_path):
  out = _run("--config=configs/demo.py", f"--workdir={tmp_path}", "--config.stage1.noise.sigma=-1")
  assert out.returncode == 2
  assert "noise.sigma must be >= 0" in out.stderr
  assert "Traceback" not in out.stderr


def test_unknown_config_field_is_named(tmp_path):
  out = _run("--config=configs/demo.py", f"--workdir={tmp_path}", "--config.stage1.model.nope=3")
  assert out.returncode == 2
  assert "nope" in out.stderr and "Traceback" not in out.stderr


def test_a_second_trainer_on_a_busy_workdir_is_one_line_at_once(tmp_path):
  """Two dbsn-train on one workdir once both died at the first save, leaving only an
  orbax temporary: now the second stops at once, naming the holder (issue 18, item 3)."""
  import time
  wd = tmp_path / "wd"
  holder = subprocess.Popen(
      [sys.executable, "-c", "import time; from dbsn_jax.train import workdir_lock\n"
       f"with workdir_lock.exclusive({str(wd)!r}):\n print('held', flush=True); time.sleep(120)"],
      cwd=REPO, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    t0 = time.time()
    out = _run("--config=configs/demo.py", f"--workdir={wd}")
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"workdir {wd} is in use by another run (pid {holder.pid})" in out.stderr
    assert "Traceback" not in out.stderr and time.time() - t0 < 120
    assert not os.path.exists(wd / "checkpoints")
  finally:
    holder.kill()
    holder.wait()
