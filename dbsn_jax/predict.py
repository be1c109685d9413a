"""Apply trained models to images: the one stage-1 (Bayes) and stage-2 prediction path.

Stage-1 denoising splits in two. `local_fn` is spatially local: D-BSN on the image, or
on its f^2 pixel-shuffled sub-images (real photos), reassembled; it can run in tiles.
`finish_fn` is per image: CNN_est (for an unseen image, the per-image model that best
explains y - mu), the Bayes posterior mean and the guided filter. Training's
evaluation, stage 2's teacher, `inference.Denoiser`, `dbsn-eval` and the noise-level
plots all go through these functions.
"""
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from dbsn_jax import losses, noise_estimate, realworld
from dbsn_jax.models import DBSN, DnCNN, MWCNN, NoiseEstimator
from dbsn_jax.models.mwcnn import ACTIVATIONS


BAYES_NOISE_LEVELS = ("learned", "estimated", "fitted")


class Stage1Model(nn.Module):
  """`y (B, H, W, C)` -> (mu, Sigma_mu, Sigma_n); Sigma_n from CNN_est of mu or y.

  `bayes_noise` and `calibrate_prior` steer only the Bayes step (`finish_fn`), never
  training: the Sigma_n it uses ('learned': CNN_est's; 'estimated': the classical
  estimate of each image, `noise_estimate`; 'fitted': CNN_est's, re-levelled with
  Sigma_mu's scale by `fitted_noise`), and whether Sigma_mu is rescaled per image.
  """
  dbsn: DBSN
  noise_model: NoiseEstimator
  noise_input: str = "mu"
  bayes_noise: str = "learned"
  calibrate_prior: bool = False

  def __call__(self, y, image_ids=None):
    mu, sigma_mu = self.dbsn(y)
    # CNN_est sees the (gradient-stopped) clean estimate mu, as in the reference, or y.
    src = jax.lax.stop_gradient(mu) if self.noise_input == "mu" else y
    return mu, sigma_mu, self.noise_model(src, image_ids)


def build_model(config, num_images: int = 0) -> Stage1Model:
  """The stage-1 model a config describes (`num_images` sizes a per-image CNN_est)."""
  m, nm = config.model, config.noise_model
  num_models = realworld.num_noise_models(num_images, realworld.settings(config), nm.per_image)
  dbsn = DBSN(channels=config.channels, features=m.features,
              branches=tuple(tuple(b) for b in m.branches), blocks=tuple(m.blocks),
              mdc_style=m.mdc_style, sigma_form=m.sigma_form,
              sigma_features=m.sigma_features, out_init_scale=m.out_init_scale,
              remat=bool(m.get("remat", False)))
  est = NoiseEstimator(channels=config.channels, mode=nm.mode, features=nm.features,
                       hidden_layers=nm.hidden_layers, num_models=num_models)
  bayes = config.get("bayes", {})
  return Stage1Model(dbsn, est, nm.input, bayes.get("noise_level", "learned"),
                     bool(bayes.get("calibrate_prior", False)))


def _centre(a, size: int):
  """The central `size x size` window of axes 1, 2 of `a (B, H, W, ...)`: images and
  per-pixel covariances `(B, H, W, C, C)` alike."""
  h, w = a.shape[1:3]
  t, l = max(0, (h - size) // 2), max(0, (w - size) // 2)
  return a[:, t:t + size, l:l + size]


def select_noise_models(params, model: Stage1Model, y, mu, sigma_mu, crop: int = 64,
                        groups=None, num_groups: int = 1):
  """For a per-image CNN_est on an unseen image: the id whose model best explains the
  residual y - mu (largest likelihood on a centre crop). With Bayer groups, image b only
  considers the models of its group `groups[b]` (ids image * num_groups + group).

  Each candidate is scored under the full predictive covariance Sigma_mu + Sigma_n: the
  residual carries mu's error as well as the noise, and scoring it by Sigma_n alone
  favours the noisiest model.
  """
  num = model.noise_model.num_models
  yc, mc, sc = (_centre(a, crop) for a in (y, mu, sigma_mu))
  src = mc if model.noise_input == "mu" else yc
  est = model.noise_model

  def score(m):
    ids = jnp.full((y.shape[0],), m, jnp.int32)
    cov = est.apply({"params": params["noise_model"]}, src, ids)
    return jax.vmap(losses.gaussian_nll)(yc, mc, sc, cov)

  scores = jax.lax.map(score, jnp.arange(num))  # (M, B)
  if groups is not None:
    same = (jnp.arange(num)[:, None] % num_groups) == jnp.asarray(groups)[None, :]
    scores = jnp.where(same, scores, jnp.inf)
  return jnp.argmin(scores, axis=0).astype(jnp.int32)


def _shuffles(rw: realworld.Settings):
  """(down, up): to the f^2 sub-images `(B f^2, H/f, W/f, ...)` and back to `shape`."""
  f = rw.downsample
  if f <= 1:
    return (lambda v: v), (lambda v, shape: v)
  return (lambda v: realworld.downsample(v, f)), \
      (lambda v, shape: realworld.upsample(v, f, shape[1:3]))


def local_fn(model: Stage1Model, rw: realworld.Settings = realworld.Settings()) -> Callable:
  """`(params, y (B, H, W, C), image (B, H, W, 1) or None) -> {mu, sigma_mu}` at full
  size. `image` marks the pixels inside a padded canvas (D-BSN zeroes the rest)."""
  down, up = _shuffles(rw)

  def local(params, y, image=None):
    mu, sigma_mu = model.dbsn.apply({"params": params["dbsn"]}, down(y),
                                    None if image is None else down(image))
    return {"mu": up(mu, y.shape), "sigma_mu": up(sigma_mu, y.shape)}
  return local


def estimated_noise(y, valid=None):
  """The classical white-noise covariance of each image: `y (B, H, W, C)` ->
  `(B, H, W, C, C)`, constant over pixels; `valid (B, H, W, 1)` marks the image inside a
  padded canvas."""
  if valid is None:
    valid = jnp.ones(y.shape[:3] + (1,), y.dtype)
  cov = jax.vmap(noise_estimate.white_noise_covariance)(y, valid=valid[..., 0])
  return jnp.broadcast_to(cov[:, None, None], y.shape[:3] + cov.shape[1:])


def noise_std(y, valid=None):
  """Each image's classical white-noise std, the root of its mean channel variance:
  `y (B, H, W, C)` -> `(B,)`; the level a `level_input` denoiser is told. Only the
  channel variances: the covariances' pair-sum planes would double a colour image's cost."""
  if valid is None:
    valid = jnp.ones(y.shape[:3] + (1,), y.dtype)
  var = jax.vmap(noise_estimate.white_noise_variances)(y, valid=valid[..., 0])
  return jnp.sqrt(jnp.mean(var, -1))


def level_map(std, y):
  """`std (B,)` -> `(B, H, W, 1)` in `y`'s dtype: the constant map a `level_input`
  network takes beside `y (B, H, W, C)`."""
  return jnp.broadcast_to(jnp.asarray(std, y.dtype)[:, None, None, None], y.shape[:3] + (1,))


def with_level(y, valid=None, std=None):
  """`y (B, H, W, C)` -> `(B, H, W, C + 1)`: the image and the `level_map` of its noise
  std (`std (B,)`, or `noise_std(y, valid)`), the input of a `level_input` stage-2
  network's local function (tiles then carry the whole image's level)."""
  return jnp.concatenate([y, level_map(noise_std(y, valid) if std is None else std, y)], -1)


def calibrated_prior(y, mu, sigma_mu, sigma_n, valid=None):
  """Sigma_mu rescaled per image so that the predictive covariance Sigma_mu + Sigma_n
  matches the residual y - mu in its mean variance over pixels and channels.

  D-BSN's Sigma_mu is trained jointly with a noise level that need not be the true one
  (issue 14: too high under Eq. 8, too low under a weak mu), so its scale is off by as
  much; with a trusted Sigma_n, the residual's second moment pins it down (the method of
  moments, one scalar per image).
  """
  w = jnp.ones(y.shape[:3] + (1,), y.dtype) if valid is None else valid
  count = jnp.maximum(jnp.sum(w, (1, 2, 3)), 1.0)

  def mean(v):  # (B, H, W, C) -> (B,): the mean over valid pixels and channels.
    return jnp.sum(w * v, (1, 2, 3)) / (count * v.shape[-1])
  residual = mean(jnp.square(y - mu))
  noise = mean(jnp.diagonal(sigma_n, axis1=-2, axis2=-1))
  prior = mean(jnp.diagonal(sigma_mu, axis1=-2, axis2=-1))
  # A residual below the noise level (mu fits y too well) leaves no room for Sigma_mu:
  # the scale floors at zero and the Bayes step returns mu.
  scale = jnp.maximum(residual - noise, 0.0) / jnp.maximum(prior, 1e-12)
  return sigma_mu * scale[:, None, None, None, None]


_FIT_ITERATIONS = 4
_FIT_FLOOR = 1e-2  # Of the mean squared residual: the smallest variance the fit returns.


def fitted_noise(y, mu, sigma_mu, sigma_n, valid=None):
  """Sigma_mu's scale and the noise level of each image, fitted to its residual y - mu by
  the plain Gaussian likelihood: `(sigma_mu, sigma_n)` for the Bayes step.

  Per image and channel c, E[(y - mu)_c^2] = s_c Sigma_mu,cc + a_c + b_c mu_c: D-BSN's
  uncertainty up to a scale, plus a noise variance that is affine in the intensity
  (Poisson-Gaussian, as a camera's). Across one image Sigma_mu varies from flat to
  textured pixels while the noise does not, which separates the two terms that a free
  per-pixel Sigma_mu confounds in training; CNN_est's level instead sits at the residual's
  floor, inflated by mu's error on textured images (docs/noise_level.md). Maximum
  likelihood by iteratively reweighted least squares (weights 1 / variance^2, the
  Gaussian score of a variance model). The fitted Sigma_n keeps CNN_est's correlation
  between channels with the fitted variances on its diagonal. Shapes: images `(B, H, W,
  C)`, covariances `(B, H, W, C, C)`, `valid (B, H, W, 1)` marks the image in a canvas.
  """
  w0 = jnp.ones(y.shape[:3] + (1,), jnp.float32) if valid is None else valid
  w0 = jnp.broadcast_to(w0.astype(jnp.float32), y.shape)
  r2 = jnp.square(y - mu)
  prior = jnp.diagonal(sigma_mu, axis1=-2, axis2=-1)
  count = jnp.maximum(jnp.sum(w0, (1, 2)), 1.0)                         # (B, C)

  def mean(v):
    return jnp.sum(w0 * v, (1, 2)) / count                              # (B, C)
  # Columns scaled to unit mean and centred, so the 3 x 3 normal equations are well
  # conditioned (an image whose Sigma_mu hardly varies leaves the first two close).
  unit_p, unit_r = jnp.maximum(mean(prior), 1e-12), jnp.maximum(mean(r2), 1e-12)
  p = prior / unit_p[:, None, None]
  mu_mean = mean(mu)
  design = jnp.stack([p - 1.0, jnp.ones_like(mu), mu - mu_mean[:, None, None]], -1)
  target = r2 / unit_r[:, None, None]

  def solve(w):
    aw = design * w[..., None]
    lhs = jnp.einsum("bhwck,bhwcl->bckl", aw, design)
    rhs = jnp.einsum("bhwck,bhwc->bck", aw, target)
    # A ridge of 1e-6 of the diagonal: an image whose Sigma_mu is constant leaves the
    # scale and the level collinear.
    ridge = 1e-6 * jnp.trace(lhs, axis1=-2, axis2=-1)[..., None, None] * jnp.eye(3)
    return jnp.linalg.solve(lhs + ridge, rhs[..., None])[..., 0]        # (B, C, 3)

  def reweight(_, coef):
    var = jnp.maximum(jnp.einsum("bhwck,bck->bhwc", design, coef), _FIT_FLOOR)
    return solve(w0 / jnp.square(var))
  coef = jax.lax.fori_loop(0, _FIT_ITERATIONS, reweight, solve(w0))
  scale = jnp.maximum(coef[..., 0], 0.0) * unit_r / unit_p              # (B, C)
  # The variance less the prior's term, s (p - 1) + s: what is left is the noise's.
  level = coef[..., 1] - coef[..., 0]
  var = level[:, None, None] + coef[:, None, None, :, 2] * (mu - mu_mean[:, None, None])
  var = jnp.maximum(var, _FIT_FLOOR) * unit_r[:, None, None]
  std = jnp.sqrt(jnp.diagonal(sigma_n, axis1=-2, axis2=-1))
  d = jnp.sqrt(var) / jnp.maximum(std, 1e-12)
  root = jnp.sqrt(scale)[:, None, None]
  return (sigma_mu * root[..., :, None] * root[..., None, :],
          sigma_n * d[..., :, None] * d[..., None, :])


def learned_noise(out):
  """The noise covariance stage 1 learned, in a `finish_fn` output: the fitted one where
  the Bayes step fits it, else CNN_est's, whichever Sigma_n the Bayes step used."""
  return out.get("sigma_n_fitted", cnn_est_noise(out))


def cnn_est_noise(out):
  """CNN_est's own covariance in a `finish_fn` output."""
  return out.get("sigma_n_learned", out["sigma_n"])


def finish_fn(model: Stage1Model, rw: realworld.Settings = realworld.Settings(),
              guided_filter: bool = True) -> Callable:
  """`(params, y, parts, ids=None) -> {mu, sigma_mu, sigma_n, bayes[, filtered]}`.

  `parts` is `local_fn`'s output (plus an optional `valid` image mask, over which
  CNN_est's per-image averages run). 'sigma_n' is the covariance the Bayes step used:
  with `model.bayes_noise='estimated'`, the classical estimate, and CNN_est's goes in
  'sigma_n_learned'. `ids` name the noise model of every (sub-)image
  (`realworld.model_ids`); None, for unseen images: a per-image CNN_est picks the most
  likely model of each (sub-)image's Bayer group. 'filtered' (with `guided_filter` and
  the config's `realworld.guided_filter`) is the self-guided filter of the Bayes
  estimate: its own edges steer it, so it smooths the down-sampling seams without
  copying noise back from the noisy input.
  """
  down, up = _shuffles(rw)
  groups = rw.num_groups
  per_group = realworld.models_per_group(model.noise_model.num_models, rw)

  def finish(params, y, parts, ids=None):
    mu, sigma_mu, valid = parts["mu"], parts["sigma_mu"], parts.get("valid")
    ys, mus = down(y), down(mu)
    if ids is None:
      ids = realworld.model_ids(jnp.zeros((y.shape[0],), jnp.int32), rw, per_image=False)
      if per_group > 1:
        ids = select_noise_models(params, model, ys, mus, down(sigma_mu),
                                  groups=ids if groups > 1 else None, num_groups=groups)
    src = jax.lax.stop_gradient(mus) if model.noise_input == "mu" else ys
    mask = None if valid is None else down(valid)
    sigma_n = up(model.noise_model.apply({"params": params["noise_model"]}, src, ids, mask),
                 y.shape)
    out = {"mu": mu, "sigma_mu": sigma_mu, "sigma_n": sigma_n}
    prior = sigma_mu
    if model.bayes_noise == "estimated":
      out["sigma_n_learned"], sigma_n = sigma_n, estimated_noise(y, valid)
      out["sigma_n"] = sigma_n
    if model.bayes_noise == "fitted":  # Fits Sigma_mu's scale too: no calibrate_prior.
      out["sigma_n_learned"] = sigma_n
      prior, sigma_n = fitted_noise(y, mu, sigma_mu, sigma_n, valid)
      out["sigma_n"] = out["sigma_n_fitted"] = sigma_n
    elif model.calibrate_prior:
      prior = calibrated_prior(y, mu, sigma_mu, sigma_n, valid)
    out["bayes"] = losses.bayes_estimate(y, mu, prior, sigma_n)
    if guided_filter and rw.guided_filter:
      out["filtered"] = realworld.guided_filter(out["bayes"], out["bayes"], rw.gf_radius,
                                                rw.gf_eps)
    return out
  return finish


def make_denoise_fn(model: Stage1Model, rw: realworld.Settings = realworld.Settings()):
  """Jitted `(params, y (B, H, W, C), ids) -> dict(mu, bayes, sigma_mu, sigma_n[, filtered])`
  for training images of known noise models `ids` (`realworld.model_ids`)."""
  local, finish = local_fn(model, rw), finish_fn(model, rw)
  return jax.jit(lambda params, y, ids: finish(params, y, local(params, y), ids))


def make_image_denoiser(model: Stage1Model, rw: realworld.Settings = realworld.Settings()):
  """Jitted `(params, y (B, H, W, C)) -> outputs` for images whose noise model is
  unknown: a per-image CNN_est picks, per (sub-)image, the model of highest likelihood."""
  local, finish = local_fn(model, rw), finish_fn(model, rw)
  return jax.jit(lambda params, y: finish(params, y, local(params, y)))


# -- stage 2 ----------------------------------------------------------------------------
def build_denoiser(config):
  """The stage-2 network a config names."""
  d = config.denoiser
  level = bool(d.get("level_input", False))
  act = d.get("activation", "relu")
  if act not in ACTIVATIONS:
    raise ValueError(f"denoiser.activation must be one of {sorted(ACTIVATIONS)}, got {act!r}")
  if d.arch == "mwcnn":
    return MWCNN(config.channels, tuple(d.widths), d.convs, level_input=level,
                 activation=act)
  if act != "relu":
    raise ValueError(f"denoiser.activation={act!r} is MWCNN's; denoiser.arch={d.arch!r} "
                     "has ReLUs only")
  if d.arch == "dncnn":
    return DnCNN(config.channels, d.features, d.depth, level_input=level)
  raise ValueError(f"denoiser.arch must be 'mwcnn' or 'dncnn', got {d.arch!r}")


def stage2_local_fn(model, rw: realworld.Settings = realworld.Settings(),
                    domain: str = "full") -> Callable:
  """`(variables, y (B, H, W, C), image (B, H, W, 1) or None) -> x`: the distilled
  network on the photo, or (`domain='subimages'`, f > 1) on its f^2 pixel-shuffled
  sub-images, reassembled. `image` marks the pixels inside a padded canvas. A
  `level_input` network takes `with_level(y)`, C + 1 channels, and returns C."""
  down, up = _shuffles(rw) if domain == "subimages" else _shuffles(realworld.Settings())
  takes_level = getattr(model, "level_input", False)

  def local(v, y, image=None):
    y, level = (y[..., :-1], y[..., -1:]) if takes_level else (y, None)
    out = apply_denoiser(model, v["params"], v.get("batch_stats", {}), down(y),
                         mask=None if image is None else down(image),
                         level=None if level is None else down(level))[0]
    return up(out, y.shape)
  return local


def stage2_post_fn(rw: realworld.Settings = realworld.Settings(), domain: str = "full"):
  """`(variables, x) -> x`, the guided filter after a sub-image network whose stage 1
  filters its own reassembled estimate; None when there is nothing to do."""
  if domain != "subimages" or not rw.guided_filter:
    return None
  return lambda v, x: realworld.guided_filter(x, x, rw.gf_radius, rw.gf_eps)


def apply_denoiser(model, params, batch_stats, y, train=False, mask=None, level=None):
  """Run either stage-2 network on `y (B, H, W, C)`; returns (output, new batch_stats).
  `mask (B, H, W, 1)`: the image inside a padded canvas (the networks zero the rest);
  `level (B, H, W, 1)`: the noise std map a `level_input` network takes."""
  if isinstance(model, DnCNN):
    if train:
      out, upd = model.apply({"params": params, "batch_stats": batch_stats}, y, True,
                             mask, level, mutable=["batch_stats"])
      return out, upd["batch_stats"]
    return model.apply({"params": params, "batch_stats": batch_stats}, y, False,
                       mask, level), batch_stats
  return model.apply({"params": params}, y, mask, level), batch_stats
