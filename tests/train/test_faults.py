"""Training faults: NaN streaks, kill -9 at any moment, damaged checkpoints, determinism."""
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
import tifffile

from dbsn_jax.train import checkpoints, stage1
from tests.conftest import REPO, tiny_stage1_config


def _params(workdir):
  return jax.tree.leaves(stage1.load(workdir)[2])


def test_nan_streak_stops_with_last_good_checkpoint_intact(tmp_path):
  wd = str(tmp_path / "wd")
  stage1.train_and_evaluate(tiny_stage1_config(**{"train.num_steps": 3, "eval.source": ""}), wd)
  good = [np.asarray(p) for p in _params(wd)]
  nan_dir = tmp_path / "nan"
  nan_dir.mkdir()
  tifffile.imwrite(nan_dir / "bad.tif", np.full((32, 32), np.nan, np.float32))
  config = tiny_stage1_config(**{"train.num_steps": 30, "train.max_nonfinite": 3,
                                 "train.checkpoint_every": 2,
                                 "data.train": f"folder:{nan_dir}"})
  with pytest.raises(FloatingPointError, match="3 consecutive non-finite steps"):
    stage1.train_and_evaluate(config, wd)
  mgr = checkpoints.manager(wd, create=False)
  step = mgr.latest_step()
  for a, b in zip(good, _params(wd)):  # Skipped steps changed nothing.
    np.testing.assert_array_equal(a, np.asarray(b))
  assert step >= 3 and all(np.all(np.isfinite(p)) for p in _params(wd))


def _train_cmd(wd, steps=32):
  return [sys.executable, "-m", "dbsn_jax.cli.train", "--config=configs/demo.py",
          f"--workdir={wd}", f"--config.stage1.train.num_steps={steps}",
          "--config.stage1.train.checkpoint_every=8", "--config.stage1.model.features=8",
          "--config.stage1.data.patch_size=24", "--config.stage1.eval.source="]


def test_kill_minus_nine_then_resume_equals_uninterrupted(tmp_path):
  full, killed = tmp_path / "full", tmp_path / "killed"
  # The uninterrupted run goes on beside the killed ones (each compiles on one core).
  uninterrupted = subprocess.Popen(_train_cmd(full), cwd=REPO, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
  for delay in (0.0, 0.3):  # Kill twice, at different moments of the run.
    proc = subprocess.Popen(_train_cmd(killed), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpt = killed / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
      steps = [int(d) for d in os.listdir(ckpt) if d.isdigit()] if ckpt.is_dir() else []
      if steps and max(steps) >= 8 + 8 * (delay > 0):
        break
      time.sleep(0.05)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  # A half-written save looks like this; resuming must ignore it.
  (killed / "checkpoints" / "24.orbax-checkpoint-tmp-123").mkdir()
  stderr = uninterrupted.communicate(timeout=600)[1]
  assert uninterrupted.returncode == 0, stderr[-2000:]
  r = subprocess.run(_train_cmd(killed), cwd=REPO, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-2000:]
  assert "resumed from step" in r.stderr
  for a, b in zip(_params(str(full)), _params(str(killed))):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_damaged_checkpoint_is_refused(tmp_path):
  wd = str(tmp_path)
  stage1.train_and_evaluate(tiny_stage1_config(**{"train.num_steps": 3, "eval.source": ""}), wd)
  state_dir = tmp_path / "checkpoints" / "3" / "state"
  files = [os.path.join(d, f) for d, _, fs in os.walk(state_dir) for f in fs
           if os.path.getsize(os.path.join(d, f)) > 100]
  for f in files:  # Truncate the array data.
    with open(f, "r+b") as fh:
      fh.truncate(os.path.getsize(f) // 2)
  with pytest.raises(ValueError, match="damaged"):
    stage1.load(wd)


def test_same_seed_same_parameters(tmp_path):
  config = tiny_stage1_config(**{"train.num_steps": 4, "eval.source": ""})
  a = stage1.train_and_evaluate(config, str(tmp_path / "a"))["state"]
  b = stage1.train_and_evaluate(config, str(tmp_path / "b"))["state"]
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
    np.testing.assert_array_equal(x, y)
  other = stage1.train_and_evaluate(tiny_stage1_config(**{
      "train.num_steps": 4, "eval.source": "", "seed": 1}), str(tmp_path / "c"))["state"]
  assert not all(np.array_equal(x, y) for x, y in
                 zip(jax.tree.leaves(a.params), jax.tree.leaves(other.params)))


def test_a_second_run_on_a_held_workdir_fails_at_once_naming_the_holder(tmp_path):
  from dbsn_jax.train import workdir_lock
  wd = str(tmp_path / "wd")
  with workdir_lock.exclusive(wd):  # Another run's lock (flock conflicts across fds).
    with pytest.raises(ValueError, match=f"workdir {wd} is in use by another run "
                       rf"\(pid {os.getpid()}\)"):
      stage1.train_and_evaluate(tiny_stage1_config(), wd)
  assert not os.path.exists(os.path.join(wd, "checkpoints"))  # Nothing was touched.
  # The kernel drops a killed holder's lock: a kill -9 never leaves the workdir blocked.
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time; from dbsn_jax.train import workdir_lock\n"
       f"with workdir_lock.exclusive({wd!r}):\n print('held', flush=True); time.sleep(60)"],
      cwd=REPO, stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline().strip() == "held"
  with pytest.raises(ValueError, match=f"pid {holder.pid}"):
    with workdir_lock.exclusive(wd):
      pass
  holder.kill()
  holder.wait()
  with workdir_lock.exclusive(wd):
    pass


def test_a_full_disk_at_save_names_the_path_and_keeps_the_last_checkpoint(tmp_path,
                                                                          monkeypatch):
  import errno
  import orbax.checkpoint as ocp
  wd = str(tmp_path / "wd")
  stage1.train_and_evaluate(tiny_stage1_config(**{"train.num_steps": 2, "eval.source": ""}), wd)
  good = [np.asarray(p) for p in _params(wd)]

  def full(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")
  monkeypatch.setattr(ocp.CheckpointManager, "save", full)
  with pytest.raises(OSError, match=r"cannot save the checkpoint of step 3 in .*checkpoints "
                     r"\(.*No space left on device\); the last complete checkpoint, step 2, "
                     "is kept"):
    stage1.train_and_evaluate(tiny_stage1_config(**{"train.num_steps": 4, "eval.source": ""}),
                              wd)
  monkeypatch.undo()
  assert checkpoints.manager(wd, create=False).latest_step() == 2
  for a, b in zip(good, _params(wd)):
    np.testing.assert_array_equal(a, np.asarray(b))
