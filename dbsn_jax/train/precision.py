"""Mixed precision: bf16 computation in the train step, fp32 everywhere it matters.

`config.compute_dtype` ('float32' or 'bfloat16') is the dtype the convolutions of the
trained network compute in. The policy is applied when a train step is built: the
model is cloned with that compute dtype (every conv then casts its input and kernel to
it), and its outputs are cast back to fp32 before the loss. So

- parameters, gradients and the Adam state stay fp32 (the gradient of a cast is the
  cast of the gradient);
- the losses, the per-pixel C x C Cholesky factors, inverses and log-determinants
  (`losses.py`, `linalg.py`) and the Bayes rule see fp32 inputs and run in fp32;
- CNN_est (a tiny per-pixel MLP whose output feeds those inverses), BatchNorm and
  stage 2's frozen stage-1 teacher run in fp32;
- evaluation and inference (`dbsn_jax.inference`) build their models in fp32 whatever
  the training dtype: bf16 keeps 8 mantissa bits, about 1/255 near 1.0, which would
  show in the PSNR of the outputs.
"""
import jax
import jax.numpy as jnp

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(config):
  """The jnp dtype `config.compute_dtype` names (default float32)."""
  name = config.get("compute_dtype", "float32")
  if name not in DTYPES:
    raise ValueError(f"compute_dtype must be one of {sorted(DTYPES)}, got {name!r}")
  return DTYPES[name]


def stage1_model(model, dtype):
  """The stage-1 model with D-BSN computing in `dtype` (CNN_est stays fp32)."""
  if dtype == jnp.float32:
    return model
  return model.clone(dbsn=model.dbsn.clone(dtype=dtype))


def denoiser(model, dtype):
  """A stage-2 MWCNN / DnCNN computing in `dtype`."""
  return model if dtype == jnp.float32 else model.clone(dtype=dtype)


def to_float32(tree):
  """Cast every floating leaf to fp32 (model outputs, before any loss)."""
  return jax.tree.map(
      lambda x: x.astype(jnp.float32) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)
