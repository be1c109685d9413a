"""Mixed precision: bf16 train steps track fp32, with fp32 parameters and Adam state."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dbsn_jax import defaults, prng
from dbsn_jax.data import input_pipeline, sources
from dbsn_jax.train import parallel, precision, stage1, stage2
from tests.conftest import tiny_stage1_config


def _losses(dtype, steps=6):
  config = tiny_stage1_config(**{"compute_dtype": dtype, "data.batch_size": 8})
  model = stage1.build_model(config)
  state = stage1.create_state(config, model)
  step = stage1.make_train_step(config, model)
  train = sources.load(config.data.train, 1)
  ds = input_pipeline.train_dataset(train.images, 24, 8, 0)
  out = []
  for i in range(steps):
    state, m = step(state, ds[i])
    out.append(float(m["loss"]))
  return np.array(out), state


def test_bf16_stage1_tracks_fp32():
  f32, _ = _losses("float32")
  bf16, state = _losses("bfloat16")
  assert bf16[-2:].mean() < bf16[:2].mean()  # Falling.
  np.testing.assert_allclose(bf16[1:], f32[1:], rtol=0.01)
  assert abs(bf16[0] - f32[0]) < 0.01 * abs(f32[0])
  # Parameters and Adam moments stay fp32.
  for leaf in jax.tree.leaves((state.params, state.opt_state)):
    if jnp.issubdtype(leaf.dtype, jnp.floating):
      assert leaf.dtype == jnp.float32


def test_bf16_really_computes_in_bf16():
  config = tiny_stage1_config()
  model = stage1.build_model(config)
  params = stage1.create_state(config, model).params
  y = prng.uniform(jax.random.PRNGKey(0), (1, 24, 24, 1))
  ids = jnp.zeros((1,), jnp.int32)
  bf = precision.stage1_model(model, jnp.bfloat16)
  jaxpr = str(jax.make_jaxpr(lambda p: bf.apply({"params": p}, y, ids))(params))
  assert "bf16" in jaxpr and "conv_general_dilated" in jaxpr
  mu32 = jax.jit(lambda p: model.apply({"params": p}, y, ids)[0])(params)
  mu16 = jax.jit(lambda p: precision.to_float32(bf.apply({"params": p}, y, ids))[0])(params)
  assert mu16.dtype == jnp.float32
  err = float(jnp.max(jnp.abs(mu16 - mu32)))
  assert 0 < err < 0.02  # Different (bf16 rounding), but close.


def test_bf16_stage2_step_tracks_fp32():
  s1 = tiny_stage1_config()
  s1_model = stage1.build_model(s1)
  s1_params = stage1.create_state(s1, s1_model).params
  rng = np.random.default_rng(0)
  batch = {"clean": rng.random((6, 16, 16, 1), np.float32),
           "real": rng.random((2, 24, 24, 1), np.float32),
           "real_id": np.zeros((2,), np.int32)}
  losses = {}
  for dtype in ("float32", "bfloat16"):
    c = defaults.stage2()
    c.compute_dtype = dtype
    c.denoiser.widths, c.denoiser.convs = (8, 8, 8), 1
    c.data.patch_size, c.data.target_margin = 16, 4
    c.distill.real_targets = "fresh"  # The teacher runs inside the step, on real patches.
    model = stage2.build_denoiser(c)
    # Replicated as in training (s1_params are), so the second step reuses the first's
    # compilation.
    state = parallel.replicate(stage2.create_state(c, model), parallel.make_mesh())
    step = stage2.make_train_step(c, model, s1, s1_model, s1_params, 1)
    losses[dtype] = []
    for _ in range(2):
      state, m = step(state, batch)
      losses[dtype].append(float(m["loss"]))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state.params))
  np.testing.assert_allclose(losses["bfloat16"], losses["float32"], rtol=0.01)


def test_unknown_dtype_is_refused():
  with pytest.raises(ValueError, match="compute_dtype must be one of"):
    stage1.validate(tiny_stage1_config(compute_dtype="float16"))
