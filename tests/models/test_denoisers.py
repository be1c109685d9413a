"""MWCNN and DnCNN: reference sizes, any input size, MWCNN starts as the identity."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dbsn_jax import prng
from dbsn_jax.models import DnCNN, MWCNN


def _count(tree):
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(tree))


def _conv(cin, cout, bias=True):
  return 9 * cin * cout + (cout if bias else 0)


def test_reference_parameter_counts():
  c = 1
  widths, n = (160, 256, 256), 3
  expect, cin = 0, 4 * c
  for w in widths:  # Encoder: entry conv + n convs per level.
    expect += _conv(cin, w) + n * _conv(w, w)
    cin = 4 * w
  for lvl, w in reversed(list(enumerate(widths))):  # Decoder: n convs + band conv.
    bands = 4 * (c if lvl == 0 else widths[lvl - 1])
    expect += n * _conv(w, w) + _conv(w, bands)
  shapes = jax.eval_shape(MWCNN(c).init, jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, c)))
  assert _count(shapes["params"]) == expect
  assert abs(expect - 16.1e6) < 0.1e6  # docs/design.md section 7: ~16.1 M.
  dn = jax.eval_shape(DnCNN(c).init, jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, c)))
  assert _count(dn["params"]) == 556_096  # 17 layers, 64 features, BatchNorm.


@pytest.mark.parametrize("shape", [(1, 13, 21, 1), (2, 9, 16, 3)])
def test_any_size_in_same_size_out(shape):
  y = prng.uniform(jax.random.PRNGKey(0), shape)
  for model in (MWCNN(shape[-1], (8, 8, 8), 1), DnCNN(shape[-1], 8, 5)):
    variables = model.init(jax.random.PRNGKey(1), y)
    assert model.apply(variables, y).shape == shape


def test_mwcnn_starts_as_identity():
  y = prng.uniform(jax.random.PRNGKey(0), (1, 24, 16, 1))
  model = MWCNN(1, (8, 8, 8), 1)
  np.testing.assert_allclose(model.apply(model.init(jax.random.PRNGKey(1), y), y), y,
                             atol=1e-6)


@pytest.mark.parametrize("arch", ["mwcnn", "dncnn"])
def test_level_input_is_read_and_required(arch):
  """A `level_input` network's output depends on the level map it is told (every
  encoder level of MWCNN sees it), it refuses to run without one, and MWCNN still
  starts as the identity."""
  y = prng.uniform(jax.random.PRNGKey(0), (2, 24, 16, 3))
  level = jnp.full((2, 24, 16, 1), 0.1)
  model = (MWCNN(3, (8, 8, 8), 1, level_input=True) if arch == "mwcnn"
           else DnCNN(3, 8, 4, level_input=True))
  variables = model.init(jax.random.PRNGKey(1), y, mask=None, level=level)
  if arch == "mwcnn":
    np.testing.assert_allclose(model.apply(variables, y, None, level), y, atol=1e-6)
    # The level map enters each level's first conv: one more input channel each.
    for i in range(3):
      kernel = variables["params"][f"Conv_{2 * i}"]["kernel"]
      assert kernel.shape[2] == (12 if i == 0 else 32) + 1
  params = jax.tree.map(lambda p: p + 0.05 * prng.normal(jax.random.PRNGKey(2), p.shape),
                        variables["params"])
  v = {**variables, "params": params}
  low = model.apply(v, y, mask=None, level=level)
  high = model.apply(v, y, mask=None, level=3 * level)
  assert float(jnp.max(jnp.abs(high - low))) > 1e-3
  with pytest.raises(ValueError, match="noise-level map"):
    model.apply(v, y)


def test_leaky_units_pushed_below_zero_still_learn():
  """With every bias pushed far below zero, a ReLU MWCNN's first conv gets no gradient
  (its units are dead for good); a leaky one's does, and both share one parameter tree."""
  y = prng.uniform(jax.random.PRNGKey(0), (1, 16, 16, 1))
  relu, leaky = MWCNN(1, (8, 8, 8), 1), MWCNN(1, (8, 8, 8), 1, activation="leaky_relu")
  params = relu.init(jax.random.PRNGKey(1), y)
  assert jax.tree.structure(params) == jax.tree.structure(leaky.init(jax.random.PRNGKey(1), y))
  # Dead units, and band-correction convs that read them (non-zero, as after training).
  params = jax.tree_util.tree_map_with_path(
      lambda path, p: p - 100.0 if path[-1].key == "bias" else p + 0.1, params)

  def first_kernel_grad(model):
    loss = lambda p: jnp.sum((model.apply(p, y) - 0.5) ** 2)
    return np.abs(np.asarray(jax.grad(loss)(params)["params"]["Conv_0"]["kernel"])).max()

  assert first_kernel_grad(relu) == 0.0
  assert first_kernel_grad(leaky) > 1e-6
  with pytest.raises(ValueError, match="activation"):
    MWCNN(1, (8, 8, 8), 1, activation="gelu").init(jax.random.PRNGKey(1), y)
