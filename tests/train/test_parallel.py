"""Data parallelism: 2 forced host devices give the same step as 1 device, both stages
(stage 1 also micro-batched)."""
import os
import subprocess
import sys
import textwrap

import numpy as np

from tests.conftest import REPO

SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    from dbsn_jax import defaults
    from dbsn_jax.data import mixed
    from dbsn_jax.train import parallel, stage1, stage2
    from tests.conftest import tiny_stage1_config
    flat = lambda t: [np.asarray(x).ravel() for x in jax.tree.leaves(t)]
    rng = np.random.default_rng(0)
    mesh = parallel.make_mesh()

    # Stage 1: one step on a global batch of 4.
    config = tiny_stage1_config()
    model = stage1.build_model(config)
    state = parallel.replicate(stage1.create_state(config, model), mesh)
    batch = {"image": rng.random((4, 24, 24, 1), np.float32),
             "image_id": np.zeros((4,), np.int32)}
    state, m1 = stage1.make_train_step(config, model)(state, parallel.shard_batch(batch, mesh))
    out = [[float(m1["loss"]), jax.device_count()]] + flat(state.params)

    # The same step in two micro-batches (gradients summed inside the jitted step).
    config.train.microbatch = 2
    state = parallel.replicate(stage1.create_state(config, model), mesh)
    state, m1 = stage1.make_train_step(config, model)(state, parallel.shard_batch(batch, mesh))
    out += [[float(m1["loss"])]] + flat(state.params)

    # Stage 2 (DnCNN: its BatchNorm statistics span the devices): 6 clean + 2 real rows.
    s2 = defaults.stage2()
    s2.denoiser.arch, s2.denoiser.features, s2.denoiser.depth = "dncnn", 8, 3
    s2.data.patch_size, s2.data.target_margin = 16, 4
    s2.distill.real_targets = "fresh"  # The teacher runs inside the step, on real patches.
    den = stage2.build_denoiser(s2)
    st2 = parallel.replicate(stage2.create_state(s2, den), mesh)
    s1p = stage1.create_state(config, model).params
    step2 = stage2.make_train_step(s2, den, config, model, s1p, 1)
    batch2 = {"clean": rng.random((6, 16, 16, 1), np.float32),
              "real": rng.random((2, 24, 24, 1), np.float32),
              "real_id": np.zeros((2,), np.int32)}
    st2, m2 = step2(st2, parallel.shard_batch(batch2, mesh))
    out += [[float(m2["loss"])]] + flat(st2.params) + flat(st2.batch_stats)
    np.save(sys.argv[1], np.concatenate(out))

    # Per-device stage-2 batches keep their clean/real split on every device.
    ds = parallel.stack_devices(mixed.mixed_dataset(
        [rng.random((40, 40, 1), np.float32)], [rng.random((40, 40, 1), np.float32)],
        16, 4, 4, 0.25, 0))
    b = parallel.shard_batch(ds[0], mesh)
    print("rows", b["clean"].shape[0], b["real"].shape[0],
          [s.data.shape[0] for s in b["real"].addressable_shards])
    try:
      parallel.shard_batch({"image": np.zeros((3, 2))}, mesh)
    except ValueError as e:
      print(e)
""")


def _start(tmp_path, devices):
  out = tmp_path / f"{devices}.npy"
  env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
         "JAX_PLATFORMS": "cpu"}
  proc = subprocess.Popen([sys.executable, "-c", "import sys\n" + SCRIPT, str(out)], cwd=REPO,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  return proc, out


def _finish(proc, out):
  stdout, stderr = proc.communicate(timeout=300)
  assert proc.returncode == 0, stderr[-2000:]
  return np.load(out), stdout


def test_two_devices_match_one(tmp_path):
  # Both runs at once: each spends most of its time compiling, on one core.
  runs = [_start(tmp_path, 1), _start(tmp_path, 2)]
  (one, _), (two, msg) = (_finish(*r) for r in runs)
  assert one[1] == 1 and two[1] == 2
  assert one.shape == two.shape
  np.testing.assert_allclose(two[0], one[0], rtol=1e-5)  # Stage-1 loss.
  # Stage-1 parameters (one pass and micro-batched), stage-2 loss, parameters and
  # BatchNorm statistics.
  np.testing.assert_allclose(two[2:], one[2:], rtol=1e-5, atol=1e-6)
  # data.batch_size is per device: 2 devices x (3 clean + 1 real), 1 real row each.
  assert "rows 6 2 [1, 1]" in msg
  assert "the batch's ['image'] rows = 3 is not divisible by the 2 devices" in msg
