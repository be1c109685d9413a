"""The fast CPU convolution paths equal the plain lax.conv path (values and gradients)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dbsn_jax import prng
from dbsn_jax.models import DBSN, DnCNN, MWCNN, fast_conv
from tests.conftest import perturbed

_TAPS_PAY = fast_conv.taps_pay  # The real rule (the fixture below forces it on).


def _close(a, b, rel=1e-5):
  """max |a - b| <= rel * max |b| (elementwise rtol is meaningless near zero)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  assert a.shape == b.shape
  scale = max(np.abs(b).max(), 1e-30)
  assert np.abs(a - b).max() <= rel * scale, f"{np.abs(a - b).max() / scale:.2e} relative"


def _tree_close(a, b, rel=1e-5):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    _close(x, y, rel)


@pytest.mark.parametrize("taps", [True, False])
@pytest.mark.parametrize("k,d,cin,cout,batch,chunk_rows", [
    (3, 1, 1, 5, 1, None), (3, 2, 3, 5, 2, None), (5, 3, 3, 4, 1, None),
    (3, 3, 1, 5, 4, 7), (3, 1, 3, 2, 4, 1), (5, 2, 4, 3, 3, 100)])
def test_fast_gradients_match_plain(k, d, cin, cout, batch, chunk_rows, taps, monkeypatch):
  """Both filter-gradient forms and the input gradient, odd sizes, batch 1; the taps
  also with the rows split into chunks that do not divide them (a zero-padded last
  chunk), down to one row per step."""
  monkeypatch.setattr(fast_conv, "taps_pay", lambda *shapes: taps)
  if chunk_rows:  # The loop over chunks (tiny inputs otherwise take one pass).
    monkeypatch.setattr(fast_conv, "CHUNK_ROWS", chunk_rows)
    monkeypatch.setattr(fast_conv, "WHOLE_ROWS", 0)
  kx, kw, kg = jax.random.split(jax.random.PRNGKey(k * 10 + d), 3)
  x = prng.normal(kx, (batch, 11, 13, cin))
  w = prng.normal(kw, (k, k, cin, cout))
  g = prng.normal(kg, (batch, 11, 13, cout))
  _close(fast_conv.conv2d_fast(x, w, d), fast_conv.conv2d_plain(x, w, d))
  _, vjp_fast = jax.vjp(lambda a, b: fast_conv.conv2d_fast(a, b, d), x, w)
  _, vjp_plain = jax.vjp(lambda a, b: fast_conv.conv2d_plain(a, b, d), x, w)
  for fast, plain in zip(vjp_fast(g), vjp_plain(g)):
    _close(fast, plain)


@pytest.mark.parametrize("form", ["weight_grad_taps", "weight_grad_conv"])
def test_weight_gradient_float64_reference(form):
  """Against a direct float64 sum over pixels of input window x output gradient, on
  an image smaller than the dilated kernel (taps that fall wholly in the padding)."""
  k, d = 3, 3
  x = np.random.default_rng(0).standard_normal((2, 4, 5, 2))
  g = np.random.default_rng(1).standard_normal((2, 4, 5, 3))
  p = (k - 1) // 2 * d
  xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
  want = np.zeros((k, k, 2, 3))
  for i in range(k):
    for j in range(k):
      win = xp[:, i * d:i * d + 4, j * d:j * d + 5]
      want[i, j] = np.einsum("bhwc,bhwo->co", win, g)
  got = getattr(fast_conv, form)(jnp.asarray(x, jnp.float32), jnp.asarray(g, jnp.float32),
                                 k, d, jnp.float32)
  _close(got, want)


@pytest.mark.parametrize("h,w,d", [(12, 18, 2), (13, 17, 2), (11, 16, 3), (1, 5, 3)])
def test_space_to_batch_round_trip_and_mask(h, w, d):
  x = prng.normal(jax.random.PRNGKey(0), (2, h, w, 3))
  sub, mask = fast_conv.space_to_batch(x, d)
  assert sub.shape == (2 * d * d, -(-h // d), -(-w // d), 3)
  np.testing.assert_array_equal(fast_conv.batch_to_space(sub, d, (h, w)), x)
  if h % d == 0 and w % d == 0:
    assert mask is None
  else:  # The mask marks exactly the real pixels.
    back = fast_conv.batch_to_space(jnp.broadcast_to(mask, sub.shape[:3] + (1,)), d,
                                    (-(-h // d) * d, -(-w // d) * d))
    assert float(back[:, :h, :w].min()) == 1.0 and float(back.sum()) == 2 * h * w
  # Sub-image (a, b) of image n holds pixels (a + d i, b + d j) of image n.
  xp = np.pad(np.asarray(x), ((0, 0), (0, (-h) % d), (0, (-w) % d), (0, 0)))
  for a in range(d):
    for b in range(d):
      for n in range(2):
        np.testing.assert_array_equal(sub[(a * d + b) * 2 + n], xp[n, a::d, b::d])


@pytest.mark.parametrize("k,d", [(3, 2), (3, 3), (5, 3)])
def test_space_to_batch_stack_equals_dilated_convs(k, d):
  """Two dilated convs with bias and ReLU between them, on odd sizes: the padded pixels
  must be re-zeroed by the mask before the second conv, as the plain zero padding is."""
  kx, k1, k2 = jax.random.split(jax.random.PRNGKey(d), 3)
  x = prng.normal(kx, (1, 13, 10, 2))
  w1, w2 = prng.normal(k1, (k, k, 2, 4)), prng.normal(k2, (k, k, 4, 3))
  bias = jnp.arange(4.0) - 1.0

  def plain(x):
    h = jax.nn.relu(fast_conv.conv2d_plain(x, w1, d) + bias)
    return fast_conv.conv2d_plain(h, w2, d)

  def s2b(x):
    sub, mask = fast_conv.space_to_batch(x, d)
    h = jax.nn.relu(fast_conv.conv2d_fast(sub, w1, 1) + bias) * mask
    return fast_conv.batch_to_space(fast_conv.conv2d_fast(h, w2, 1), d, x.shape[1:3])

  _close(s2b(x), plain(x))
  _close(jax.grad(lambda v: jnp.sum(jnp.sin(s2b(v))))(x),
         jax.grad(lambda v: jnp.sum(jnp.sin(plain(v))))(x))


def _model_case(model_cls, impl, **kw):
  return model_cls(conv_impl="plain", **kw), model_cls(conv_impl=impl, **kw)


@pytest.fixture(autouse=True)
def _taps_everywhere(monkeypatch):
  """Tiny test layers take the tap-by-tap gradient too (normally only large ones)."""
  monkeypatch.setattr(fast_conv, "taps_pay", lambda *shapes: True)


@pytest.mark.parametrize("impl", ["s2b", "fast"])
@pytest.mark.parametrize("channels,shape,style", [(1, (1, 13, 17), "paper"),
                                                  (3, (2, 12, 9), "reference")])
def test_dbsn_fast_paths_equal_plain(impl, channels, shape, style):
  kw = dict(channels=channels, features=8, blocks=(2, 1), mdc_style=style,
            sigma_form="full" if channels == 3 else "diag")
  plain, fast = _model_case(DBSN, impl, **kw)
  y = prng.uniform(jax.random.PRNGKey(0), shape + (channels,))
  params = plain.init(jax.random.PRNGKey(1), y)["params"]
  # Same parameter tree (names and shapes), so weights load into either path.
  assert (jax.tree.map(jnp.shape, fast.init(jax.random.PRNGKey(1), y)["params"])
          == jax.tree.map(jnp.shape, params))
  _tree_close(fast.apply({"params": params}, y), plain.apply({"params": params}, y))

  def loss(p, v, model):
    mu, sigma = model.apply({"params": p}, v)
    return jnp.sum(jnp.sin(3 * mu)) + jnp.sum(sigma ** 2)

  grad = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)
  _tree_close(grad(params, y, fast), grad(params, y, plain))


def test_remat_keeps_parameters_and_gradients():
  y = prng.uniform(jax.random.PRNGKey(0), (1, 10, 11, 1))
  base = DBSN(features=8, blocks=(1, 2))
  params = base.init(jax.random.PRNGKey(1), y)["params"]
  remat = base.clone(remat=True)
  assert (jax.tree.map(jnp.shape, remat.init(jax.random.PRNGKey(1), y)["params"])
          == jax.tree.map(jnp.shape, params))
  loss = lambda p, m: jnp.sum(m.apply({"params": p}, y)[0] ** 2)  # noqa: E731
  grad = jax.jit(jax.grad(loss), static_argnums=1)
  _tree_close(grad(params, remat), grad(params, base))


@pytest.mark.parametrize("model_cls,kw,shape", [
    (MWCNN, dict(channels=1, widths=(4, 8, 8), convs=1), (1, 13, 11, 1)),
    (DnCNN, dict(channels=3, features=8, depth=4), (2, 9, 7, 3))])
def test_denoisers_fast_path_equals_plain(model_cls, kw, shape):
  plain, fast = _model_case(model_cls, "fast", **kw)
  y = prng.uniform(jax.random.PRNGKey(0), shape)
  variables = plain.init(jax.random.PRNGKey(1), y)
  # Random (not zero-initialised) weights, so every conv's gradient is exercised.
  variables = {**variables, "params": perturbed(variables["params"], 2, 0.1)}
  _close(fast.apply(variables, y), plain.apply(variables, y))
  loss = lambda p, m: jnp.sum(m.apply({**variables, "params": p}, y) ** 2)  # noqa: E731
  grad = jax.jit(jax.grad(loss), static_argnums=1)
  _tree_close(grad(variables["params"], fast), grad(variables["params"], plain))


def test_bfloat16_compute_on_fast_path():
  """bf16 inputs and parameters (mixed-precision training) flow through unchanged."""
  y = prng.uniform(jax.random.PRNGKey(0), (1, 9, 12, 1))
  plain, fast = _model_case(DBSN, "fast", features=8, blocks=(1, 1), dtype=jnp.bfloat16)
  params = plain.init(jax.random.PRNGKey(1), y)["params"]
  p16 = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params)
  loss = lambda p, m: jnp.sum(m.apply({"params": p}, y.astype(jnp.bfloat16))[0])  # noqa: E731
  grad = jax.jit(jax.grad(loss), static_argnums=1)
  g_fast, g_plain = grad(p16, fast), grad(p16, plain)
  assert all(g.dtype == jnp.bfloat16 for g in jax.tree.leaves(g_fast))
  _tree_close(g_fast, g_plain, rel=0.05)


def test_taps_rule():
  assert _TAPS_PAY((3, 3, 96, 96))      # D-BSN reference
  assert _TAPS_PAY((3, 3, 48, 48))      # D-BSN CPU budget
  assert not _TAPS_PAY((3, 3, 1, 96))    # one input channel
  assert not _TAPS_PAY((3, 3, 64, 3))   # three output channels


def test_gradients_inside_a_loop_equal_the_whole_batch():
  """Micro-batching runs the backward pass in a scan body: there too the fast
  gradients equal the plain whole-batch ones (both filter-gradient forms)."""
  kx, kw = jax.random.split(jax.random.PRNGKey(7))
  x = prng.normal(kx, (4, 9, 11, 3))
  ws = [w for w in prng.normal(kw, (2, 3, 3, 3, 3))]

  def loss(ws, v, conv):
    for w in ws:
      v = jnp.tanh(conv(v, w, 2))
    return jnp.sum(v ** 2)

  want = jax.grad(loss)(ws, x, fast_conv.conv2d_plain)

  def looped(ws):
    def body(acc, xi):
      g = jax.grad(loss)(ws, xi[None], fast_conv.conv2d_fast)
      return jax.tree.map(jnp.add, acc, g), None
    return jax.lax.scan(body, jax.tree.map(jnp.zeros_like, ws), x)[0]

  _tree_close(jax.jit(looped)(ws), want)


def test_resolve():
  assert fast_conv.resolve("auto") == ("fast" if jax.default_backend() == "cpu" else "plain")
  with pytest.raises(ValueError, match="conv_impl must be one of"):
    fast_conv.resolve("cudnn")
