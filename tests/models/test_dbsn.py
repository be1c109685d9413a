"""D-BSN: the blind spot is exactly blind, sizes match the reference."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dbsn_jax import prng
from dbsn_jax.models import DBSN
from tests.conftest import perturbed


def _random_params(model, y, seed=0):
  """Initial parameters plus noise, so biases and output layers are not special."""
  return perturbed(model.init(jax.random.PRNGKey(seed), y)["params"], seed + 1, 0.1)


def _input_gradient(model, params, y, pixel):
  """d (sum of mu and Sigma_mu at `pixel`) / d y, shape (H, W, C)."""
  return np.asarray(_jitted_gradient(model, params, y, jnp.asarray(pixel)))


@functools.partial(jax.jit, static_argnums=0)
def _jitted_gradient(model, params, y, pixel):
  # One compiled program per model for every pixel (the pixel is an argument), as the
  # train step is compiled: eager op-by-op dispatch took most of these tests' time.
  def out_at(inp):
    mu, sigma = model.apply({"params": params}, inp)
    return jnp.sum(mu[0, pixel[0], pixel[1]]) + jnp.sum(sigma[0, pixel[0], pixel[1]])
  return jax.grad(out_at)(y)[0]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("style", ["paper", "reference"])
@pytest.mark.parametrize("branches", [((3, 2),), ((5, 3),), ((3, 2), (5, 3))])
def test_blind_spot_is_exact(channels, style, branches):
  model = DBSN(channels=channels, features=8, branches=branches, blocks=(1,) * len(branches),
               mdc_style=style, sigma_form="full" if channels == 3 else "diag")
  y = prng.uniform(jax.random.PRNGKey(3), (1, 28, 28, channels))
  params = _random_params(model, y)
  for pixel in [(14, 14), (0, 0), (27, 5)]:
    g = _input_gradient(model, params, y, pixel)
    assert np.all(g[pixel] == 0.0), f"output at {pixel} depends on its own input"
  # Exactly the offsets the dilated design can reach are seen: o1 + d * a with o1 in the
  # masked k x k window minus the centre and |a| <= 2 per MDC module (both styles).
  reach = _reachable(branches, 1)
  g = np.abs(_input_gradient(model, params, y, (14, 14))).sum(-1)
  seen = {(i - 14, j - 14) for i, j in zip(*np.nonzero(g))}
  assert seen <= reach, f"unexpected offsets seen: {sorted(seen - reach)[:5]}"
  window = {o for o in reach if max(abs(o[0]), abs(o[1])) <= 6}
  assert len(seen & window) >= 0.9 * len(window), f"{len(seen & window)} of {len(window)}"


@pytest.mark.parametrize("impl", ["s2b", "fast"])
def test_blind_spot_on_optimised_paths(impl, monkeypatch):
  """Space-to-batch and the tap-by-tap gradient (forced on for this tiny model) keep the
  blind spot, on a size neither dilation divides (padded sub-images)."""
  from dbsn_jax.models import fast_conv
  monkeypatch.setattr(fast_conv, "taps_pay", lambda *shapes: True)
  branches = ((3, 2), (5, 3))
  model = DBSN(channels=1, features=8, branches=branches, blocks=(1, 1), conv_impl=impl)
  y = prng.uniform(jax.random.PRNGKey(3), (1, 27, 25, 1))
  params = _random_params(model, y)
  for pixel in [(13, 12), (0, 0), (26, 24)]:
    g = _input_gradient(model, params, y, pixel)
    assert np.all(g[pixel] == 0.0), f"output at {pixel} depends on its own input"
  seen = {(i - 13, j - 12) for i, j in zip(*np.nonzero(
      np.abs(_input_gradient(model, params, y, (13, 12))).sum(-1)))}
  assert seen <= _reachable(branches, 1)
  # And the parameters' gradient equals the plain path's.
  plain = model.clone(conv_impl="plain")
  loss = lambda p, m: jnp.sum(m.apply({"params": p}, y)[0] ** 2)  # noqa: E731
  grad = jax.jit(jax.grad(loss), static_argnums=1)
  for a, b in zip(jax.tree.leaves(grad(params, model)), jax.tree.leaves(grad(params, plain))):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(b))))


def _reachable(branches, blocks):
  out = set()
  for k, d in branches:
    r, m = (k - 1) // 2, 2 * blocks
    for oi in range(-r, r + 1):
      for oj in range(-r, r + 1):
        if (oi, oj) != (0, 0):
          out |= {(oi + d * a, oj + d * b) for a in range(-m, m + 1) for b in range(-m, m + 1)}
  return out


def test_unmasked_network_leaks():
  """Negative control: without the centre mask the output sees its own input."""
  model = DBSN(channels=1, features=8, blocks=(1, 1), blind=False)
  y = prng.uniform(jax.random.PRNGKey(0), (1, 24, 24, 1))
  g = _input_gradient(model, _random_params(model, y), y, (12, 12))
  assert np.abs(g[12, 12]).sum() > 0


def _count(params, exclude=()):
  return sum(int(np.prod(p.shape)) for path, p in jax.tree_util.tree_leaves_with_path(params)
             if not any(e in jax.tree_util.keystr(path) for e in exclude))


def test_reference_parameter_count():
  model = DBSN(channels=1, mdc_style="reference")
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 1)))
  # docs/design.md section 2: 6,612,289 for the mu network; the Sigma_mu head is separate.
  assert _count(shapes["params"], exclude=("sigma_",)) == 6_612_289
  assert model.receptive_radius == 50


def test_output_shapes_and_positive_sigma():
  model = DBSN(channels=3, features=8, blocks=(1, 1), sigma_form="full")
  y = prng.uniform(jax.random.PRNGKey(0), (2, 20, 20, 3))
  params = _random_params(model, y)
  mu, sigma = jax.jit(model.apply)({"params": params}, y)
  assert mu.shape == (2, 20, 20, 3) and sigma.shape == (2, 20, 20, 3, 3)
  np.testing.assert_allclose(sigma, np.swapaxes(sigma, -1, -2), atol=1e-6)
  assert np.all(np.linalg.eigvalsh(np.asarray(sigma, np.float64)) > -1e-7)


def test_initial_mu_is_not_far_off():
  """Scaled output init: mu starts within 0.1 of mid-grey, not ~86x too large."""
  model = DBSN(channels=1, features=16, blocks=(2, 2))
  y = prng.uniform(jax.random.PRNGKey(0), (1, 32, 32, 1))
  mu, _ = model.apply(model.init(jax.random.PRNGKey(1), y), y)
  assert float(jnp.max(jnp.abs(mu - 0.5))) < 0.1


def test_leaky_dilation_is_refused():
  model = DBSN(channels=1, features=8, branches=((5, 2),), blocks=(1,))
  with pytest.raises(ValueError, match="dilation 2 must exceed"):
    model.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 1)))
