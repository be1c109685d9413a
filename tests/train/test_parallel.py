"""Data parallelism: 2 forced host devices give the same step as 1 device."""
import os
import subprocess
import sys
import textwrap

import numpy as np

from tests.conftest import REPO

SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    from dbsn_jax.train import parallel, stage1
    from tests.conftest import tiny_stage1_config
    config = tiny_stage1_config()
    model = stage1.build_model(config)
    mesh = parallel.make_mesh()
    state = parallel.replicate(stage1.create_state(config, model), mesh)
    rng = np.random.default_rng(0)
    batch = {"image": rng.random((4, 24, 24, 1), np.float32),
             "image_id": np.zeros((4,), np.int32)}
    state, m = stage1.make_train_step(config, model)(state, parallel.shard_batch(batch, mesh))
    leaves = [np.asarray(x).ravel() for x in jax.tree.leaves(state.params)]
    np.save(sys.argv[1], np.concatenate([[float(m["loss"]), jax.device_count()]] + leaves))
    try:
      parallel.check_batch(3)
    except ValueError as e:
      print(e)
""")


def _run(tmp_path, devices):
  out = tmp_path / f"{devices}.npy"
  env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
         "JAX_PLATFORMS": "cpu"}
  r = subprocess.run([sys.executable, "-c", "import sys\n" + SCRIPT, str(out)], cwd=REPO,
                     env=env, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-2000:]
  return np.load(out), r.stdout


def test_two_devices_match_one(tmp_path):
  one, _ = _run(tmp_path, 1)
  two, msg = _run(tmp_path, 2)
  assert one[1] == 1 and two[1] == 2
  np.testing.assert_allclose(two[0], one[0], rtol=1e-5)
  np.testing.assert_allclose(two[2:], one[2:], rtol=1e-5, atol=1e-6)
  assert "data.batch_size = 3 is not divisible by the 2 devices" in msg
