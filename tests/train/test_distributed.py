"""Multi-host: two processes on localhost, joined by jax.distributed, train stage 1.

They must agree on the parameters, write one checkpoint together, and match one process
with two devices trained on the same global batches (so each process read its own
share of every batch); a single process then restores their checkpoint.
"""
import os
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np

from tests.conftest import REPO

COMMON = textwrap.dedent("""
    import sys, numpy as np
    from tests.conftest import tiny_stage1_config
    config = tiny_stage1_config(**{"train.num_steps": 3, "train.checkpoint_every": 3,
                                   "train.log_every": 1, "eval.source": ""})
    flat = lambda t: np.concatenate([np.asarray(x).ravel() for x in jax.tree.leaves(t)])
""")

WORKER = textwrap.dedent("""
    import sys
    from absl import logging
    from dbsn_jax.train import distributed
    logging.set_verbosity(logging.INFO)
    pid, port, workdir, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    assert distributed.initialize(f"localhost:{port}", 2, pid)
    import jax
    from dbsn_jax.train import parallel, stage1
""") + COMMON + textwrap.dedent("""
    assert jax.process_count() == 2 and jax.device_count() == 2
    state = stage1.train_and_evaluate(config, workdir)["state"]
    np.save(out, flat(parallel.local_copy(state.params)))
""")

SINGLE = textwrap.dedent("""
    import jax
    from dbsn_jax.train import parallel, stage1
""") + COMMON + textwrap.dedent("""
    mp_workdir, workdir, out = sys.argv[1:4]
    assert jax.process_count() == 1 and jax.device_count() == 2
    restored = flat(stage1.load(mp_workdir)[2])
    trained = flat(parallel.local_copy(stage1.train_and_evaluate(config, workdir)["state"].params))
    np.save(out, np.stack([restored, trained]))
""")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _env(devices):
  return {**os.environ, "JAX_PLATFORMS": "cpu",
          "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}


def test_two_processes_train_checkpoint_and_restore(tmp_path):
  port, wd = _free_port(), tmp_path / "mp"
  t0 = time.time()
  procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(i), str(port), str(wd),
                             str(tmp_path / f"p{i}.npy")], cwd=REPO, env=_env(1),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for i in range(2)]
  logs = [p.communicate(timeout=300)[0] for p in procs]
  wall = time.time() - t0
  for p, log in zip(procs, logs):
    assert p.returncode == 0, log[-3000:]
  print(f"two-process training wall time: {wall:.1f} s")
  p0, p1 = np.load(tmp_path / "p0.npy"), np.load(tmp_path / "p1.npy")
  np.testing.assert_array_equal(p0, p1)
  # One checkpoint (step 3), one config.json, one TensorBoard writer (process 0).
  assert sorted(os.listdir(wd / "checkpoints")) == ["3"]
  assert (wd / "config.json").exists()
  assert len(os.listdir(wd / "tensorboard")) == 1
  # Progress lines come from process 0 only.
  assert "step 3/3" in logs[0] and "step 3/3" not in logs[1]

  r = subprocess.run([sys.executable, "-c", SINGLE, str(wd), str(tmp_path / "single"),
                      str(tmp_path / "s.npy")], cwd=REPO, env=_env(2),
                     capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  restored, trained = np.load(tmp_path / "s.npy")
  np.testing.assert_array_equal(restored, p0)
  np.testing.assert_allclose(trained, p0, rtol=1e-5, atol=1e-6)


def test_partial_coordinator_settings_are_refused(monkeypatch):
  from dbsn_jax.train import distributed
  for k in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
    monkeypatch.delenv(k, raising=False)
  assert distributed.initialize() is False  # Nothing given: single process.
  try:
    distributed.initialize("localhost:1234", num_processes=2)
  except ValueError as e:
    assert "--process_id" in str(e)
  else:
    raise AssertionError("a missing --process_id was accepted")
  monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
  monkeypatch.setenv("JAX_PROCESS_ID", "2")
  try:
    distributed.initialize("localhost:1234")
  except ValueError as e:
    assert "--process_id=2 must be in [0, 2)" in str(e)
  else:
    raise AssertionError("process_id out of range was accepted")
