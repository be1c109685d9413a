"""Stage 2: distil stage 1 into MWCNN or DnCNN (docs/design.md section 7, paper Eq. 4).

Each batch mixes Bs clean patches x, corrupted by a learned noise model
(y~ = x + s L(x) z, Sigma_n(x) = L L^T, s ~ U(0.9, 1.1), z ~ N(0, I); a per-image
model drawn at random when stage 1 learned one per image), with Br real noisy
patches y whose target is the stage-1 Bayes estimate x_hat(y). Real noise, or synthetic
noise with `distill.real_targets='fixed'`, gives fixed (y, x_hat) pairs made once per
image; 'fresh' draws new synthetic noise each step and runs the teacher on it.
"""
from typing import Any, Dict

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from dbsn_jax import linalg, metrics, noise, noise_estimate, predict, prng, realworld, report
from dbsn_jax.data import mixed, overlap, sources
from dbsn_jax.train import checkpoints, loop, parallel, precision, stage1, state as state_lib, \
    workdir_lock


# The stage-2 networks' construction and application live in `dbsn_jax.predict`.
build_denoiser = predict.build_denoiser
apply_denoiser = predict.apply_denoiser


def validate(config, s1_config) -> None:
  """Refuse a bad stage-2 config or a mismatched stage-1 checkpoint, naming both."""
  if s1_config.channels != config.channels:
    raise ValueError(f"stage-1 checkpoint in {config.stage1_workdir} has channels="
                     f"{s1_config.channels} but the stage-2 config has channels={config.channels}")
  if config.distill.lam < 0:
    raise ValueError(f"distill.lam must be >= 0, got {config.distill.lam}")
  lo, hi = config.distill.scale_range
  if not 0 <= lo <= hi:
    raise ValueError("distill.scale_range must satisfy 0 <= a <= b, got "
                     f"{config.distill.scale_range}")
  if config.data.patch_size <= 0 or config.data.batch_size <= 0:
    raise ValueError("data.patch_size and data.batch_size must be > 0")
  parallel.check_per_device(config.data.batch_size)
  mixed.split_batch(config.data.batch_size, config.data.real_fraction)
  precision.compute_dtype(config)  # Raises on an unknown dtype.
  f = realworld.settings(s1_config).downsample
  if config.data.patch_size % f:
    raise ValueError(f"data.patch_size must be a multiple of stage 1's realworld.downsample="
                     f"{f} (noise is synthesised per sub-image), got {config.data.patch_size}")
  # MWCNN halves the patch once per level (one per entry of denoiser.widths).
  mwcnn_multiple = 2 ** len(config.denoiser.widths) if config.denoiser.arch == "mwcnn" else 1
  if config.data.patch_size % mwcnn_multiple:
    raise ValueError(f"data.patch_size must be a multiple of {mwcnn_multiple} for MWCNN with "
                     f"{len(config.denoiser.widths)} levels, got {config.data.patch_size}")
  domain, weighting = distill_domain(config), config.distill.get("weighting", "pixels")
  if domain not in DOMAINS:
    raise ValueError(f"distill.domain must be one of {DOMAINS}, got {domain!r}")
  if weighting not in WEIGHTINGS:
    raise ValueError(f"distill.weighting must be one of {WEIGHTINGS}, got {weighting!r}")
  if noise_levels(config) not in NOISE_LEVELS:
    raise ValueError(f"distill.noise_levels must be one of {NOISE_LEVELS}, got "
                     f"{noise_levels(config)!r}")
  s1_level = s1_config.get("bayes", {}).get("noise_level", "learned")
  if noise_levels(config) == "fitted" and s1_level != "fitted":
    raise ValueError("distill.noise_levels='fitted' needs a stage 1 whose Bayes step fits the "
                     f"noise level (bayes.noise_level='fitted'); {config.stage1_workdir} has "
                     f"{s1_level!r}")
  if config.denoiser.get("level_input", False):
    if domain != "full":
      raise ValueError("denoiser.level_input needs distill.domain='full' (the level map is "
                       f"estimated on whole images), got {domain!r}")
    if level_source(config, s1_config) is None:
      raise ValueError("denoiser.level_input needs noise of one white level per image (a "
                       "stage-1 noise_model.mode of 'awgn' or 'multivariate' and "
                       "distill.noise_levels other than 'patch'), the level a classical "
                       f"estimate reads off a test image; {config.stage1_workdir} has mode "
                       f"{s1_config.noise_model.mode!r} and noise_levels "
                       f"{noise_levels(config)!r}")
  if real_targets(config) not in REAL_TARGETS:
    raise ValueError(f"distill.real_targets must be one of {REAL_TARGETS}, got "
                     f"{real_targets(config)!r}")
  if domain == "subimages":
    if f <= 1:
      raise ValueError("distill.domain='subimages' needs a stage 1 that down-sampled "
                       f"(realworld.downsample > 1); {config.stage1_workdir} has f = {f}")
    if config.data.patch_size % (mwcnn_multiple * f):
      raise ValueError(f"data.patch_size must be a multiple of {mwcnn_multiple} * {f} for "
                       f"MWCNN on sub-images, got {config.data.patch_size}")
  build_denoiser(config)


DOMAINS = ("full", "subimages")
WEIGHTINGS = ("pixels", "means")
REAL_TARGETS = ("fixed", "fresh")
NOISE_LEVELS = ("own_image", "fitted", "estimated", "estimated_pooled", "patch")


def distill_domain(config) -> str:
  """The stage-2 config's `distill.domain` ('full' for configs that predate it)."""
  return config.distill.get("domain", "full")


def real_targets(config) -> str:
  """The stage-2 config's `distill.real_targets` ('fresh' for configs that predate it:
  they were trained that way)."""
  return config.distill.get("real_targets", "fresh")


def noise_levels(config) -> str:
  """The stage-2 config's `distill.noise_levels` ('patch' for configs that predate it)."""
  return config.distill.get("noise_levels", "patch")


def level_source(config, s1_config):
  """Where the synthetic pairs' noise levels come from: None (CNN_est on the clean
  patch), 'own_image', 'fitted', 'estimated' or 'estimated_pooled'
  (`distill.noise_levels`). All but the first need a CNN_est averaged over the image: a
  per-pixel model's level is a function of the intensity, which the clean patch
  supplies."""
  source = noise_levels(config)
  if source == "patch" or s1_config.noise_model.mode not in ("awgn", "multivariate"):
    return None
  return source


def estimated_levels(images, f: int = 1):
  """Noisy training images `(H, W, C)` -> `(N, f, f, C, C)`: the white-noise covariance
  `noise_estimate` finds in each (sub-)image, one per phase of down-sampling by f."""
  estimate = noise_estimate.white_noise_covariance  # Jitted: one compile per size.
  return np.stack([[[np.asarray(estimate(np.asarray(im)[a::f, b::f]))
                     for b in range(f)] for a in range(f)] for im in images]).astype(np.float32)


def pooled_level(levels):
  """`(N, f, f, C, C)` -> `(1, f, f, C, C)`: the level of median trace, one for the whole set.

  For a noisy set that shares one noise level (one camera setting), the set's median is
  far tighter than any one image's estimate, which texture biases up or down; a
  medoid, not an element-wise median, so the result is one image's (positive definite)
  covariance."""
  trace = np.trace(levels, axis1=-2, axis2=-1).sum(axis=(1, 2))
  return levels[np.argsort(trace, kind="stable")[(len(trace) - 1) // 2]][None]


def fixed_pairs(config, s1_config) -> bool:
  """Whether the real pairs are made once up front: always for real noise; for
  synthetic noise when `distill.real_targets='fixed'` (one noise draw per image, as a
  user's fixed noisy set is), so no step runs the stage-1 teacher."""
  return noise.from_config(s1_config.noise) is None or real_targets(config) == "fixed"


def fixed_noisy_images(images, s1_config, seed: int):
  """One synthetic-noise draw per clean training image, keyed by (seed, image index)."""
  add_noise = noise.from_config(s1_config.noise)
  if add_noise is None:
    return list(images)
  draw = jax.jit(lambda k, x, i: add_noise(k, x, i)[0])
  key = jax.random.PRNGKey(seed + 2)
  return [np.asarray(draw(jax.random.fold_in(key, i), jnp.asarray(im)[None],
                          jnp.array([i], jnp.int32))[0]) for i, im in enumerate(images)]


def synthesize(key, x, s1_model, s1_params, num_models, scale_range,
               rw: realworld.Settings = realworld.Settings(), levels=None,
               with_scale: bool = False):
  """y~ = x + s L z with the learned noise model; returns (y~, Sigma_n), and s `(B,)`
  if `with_scale` (the noise's covariance is s^2 Sigma_n).

  `levels (N, f, f, C, C)`, if given (see `stage1_on_images`): each patch draws one of the N
  training images and takes the covariance its noise models have on it, tiled with
  period f (one per sub-image phase). Otherwise CNN_est runs on the clean patch: one of
  `num_models` per-image models (0: one shared) drawn per patch; with stage-1
  down-sampling by f, each of the patch's f^2 sub-images gets the noise model of its
  Bayer group, exactly as stage 1 learned them (patch sides multiples of f).
  """
  k_id, k_s, k_z = jax.random.split(key, 3)
  b, h, w, _ = x.shape
  if levels is not None:
    f = levels.shape[1]
    pick = levels[jax.random.randint(k_id, (b,), 0, levels.shape[0])]
    cov = jnp.tile(pick, (1, h // f, w // f, 1, 1))
  else:
    ids = jax.random.randint(k_id, (b,), 0, max(num_models, 1))
    noise_params = {"params": s1_params["noise_model"]}
    est = lambda v, i: s1_model.noise_model.apply(noise_params, v, i)  # noqa: E731
    if rw.downsample > 1:
      f = rw.downsample
      sub_ids = realworld.model_ids(ids, rw, per_image=num_models > 0)
      cov = realworld.shuffle(est(realworld.unshuffle(x, f), sub_ids), f)
    else:
      cov = est(x, ids)
  chol = linalg.cholesky(cov + 1e-12 * jnp.eye(x.shape[-1]))
  s = jax.random.uniform(k_s, (b, 1, 1, 1), minval=scale_range[0], maxval=scale_range[1])
  z = prng.normal(k_z, x.shape)
  y = x + s * jnp.einsum("bhwij,bhwj->bhwi", chol, z)
  return (y, cov, s[:, 0, 0, 0]) if with_scale else (y, cov)


def synthetic_stds(cov, scale):
  """`synthesize`'s `Sigma_n (B, H, W, C, C)` and s `(B,)` -> `(B,)`: the std of each
  patch's synthesised noise, the root of its mean variance over pixels and channels."""
  return scale * jnp.sqrt(jnp.mean(jnp.diagonal(cov, axis1=-2, axis2=-1), (1, 2, 3)))


def level_stds(levels):
  """`(N, f, f, C, C)` covariances -> `(N,)`: each image's noise std, the root of the
  mean variance over phases and channels (what `predict.noise_std` estimates)."""
  return np.sqrt(np.mean(np.diagonal(levels, axis1=-2, axis2=-1), axis=(1, 2, 3)))


def stage1_target_fn(s1_config, s1_model, filtered: bool = True, with_sigma_n: bool = False,
                     fitted: bool = False):
  """`(s1_params, y (B, H, W, C), image_ids (B,)) -> x_hat` (and CNN_est's Sigma_n if
  `with_sigma_n`, or the fitted one of a 'fitted' Bayes step if also `fitted`): stage
  1's final estimate (Bayes, or guided-filtered with down-sampling if `filtered`) for
  training images of known id. A network that is guided-filtered itself learns the
  unfiltered one."""
  rw = realworld.settings(s1_config)
  denoise = predict.make_denoise_fn(s1_model, rw)
  per_image = bool(s1_config.noise_model.per_image)

  def target(s1p, y, image_ids):
    out = denoise(s1p, y, realworld.model_ids(image_ids, rw, per_image))
    x_hat = out["filtered"] if rw.guided_filter and filtered else out["bayes"]
    # The level CNN_est learned, whichever Sigma_n the Bayes step used (or the fitted one).
    sigma_n = predict.learned_noise(out) if fitted else predict.cnn_est_noise(out)
    return (x_hat, sigma_n) if with_sigma_n else x_hat
  return target


def real_pairs(images, s1_config, s1_model, s1_params, filtered: bool = True):
  """Real noisy images -> `(H, W, 2C)` arrays: the image beside its stage-1 target, so
  one random crop / flip cuts both. Computed once on whole images: no border effects."""
  return stage1_on_images(images, s1_config, s1_model, s1_params, filtered)[0]


def stage1_on_images(images, s1_config, s1_model, s1_params, filtered: bool = True,
                     fitted: bool = False):
  """Stage 1 once on each whole noisy training image -> (pairs, levels): `real_pairs`'
  list, and `(N, f, f, C, C)`, the covariance image i's own noise model(s) give on it,
  one per sub-image phase with down-sampling by f (f = 1 otherwise): its level, for
  CNN_est modes averaged over the (sub-)image. `fitted`: the level the 'fitted' Bayes
  step found instead (affine in the intensity: its mean over each phase's pixels)."""
  f = max(realworld.settings(s1_config).downsample, 1)
  run = jax.jit(stage1_target_fn(s1_config, s1_model, filtered, with_sigma_n=True,
                                 fitted=fitted))
  pairs, levels = [], []
  for i, im in enumerate(images):
    target, sigma_n = run(s1_params, jnp.asarray(im)[None], jnp.array([i], jnp.int32))
    pairs.append(np.concatenate([im, np.asarray(target[0])], -1))
    sigma_n = np.asarray(sigma_n[0])
    levels.append(phase_means(sigma_n, f) if fitted else sigma_n[:f, :f])
  return pairs, np.stack(levels).astype(np.float32)


def phase_means(sigma_n, f: int):
  """`(H, W, C, C)` -> `(f, f, C, C)`: the mean covariance over the pixels of each phase
  (a, b) of down-sampling by f, i.e. over sub-image (a, b)."""
  return np.array([[sigma_n[a::f, b::f].mean((0, 1)) for b in range(f)] for a in range(f)])


def distill_loss(pred_syn, x, pred_real, x_hat, lam, weighting: str = "pixels"):
  """Paper Eq. 4. 'pixels': [sum ||CDN(y~) - x||^2 + lam sum ||CDN(y) - x_hat||^2] /
  (pixels in batch); 'means': mean ||CDN(y~) - x||^2 + lam mean ||CDN(y) - x_hat||^2
  (the reference's weighting: the real pairs weigh lam whatever their share)."""
  syn, real = jnp.square(pred_syn - x), jnp.square(pred_real - x_hat)
  if weighting == "means":
    return (jnp.mean(syn) if syn.size else 0.0) + lam * (jnp.mean(real) if real.size else 0.0)
  return (jnp.sum(syn) + lam * jnp.sum(real)) / (syn.size + real.size)


def make_train_step(config, model, s1_config, s1_model, s1_params, num_images, levels=None,
                    real_levels=None):
  """Jitted `train_step(state, batch) -> (state, metrics)` with stage 1 frozen;
  `levels` as `synthesize` takes them (None: CNN_est on the clean patch). A
  `level_input` network is told each synthetic patch's noise std, s times its model's,
  and each real patch's `real_levels[real_id]` (`(N,)`: the classical estimate on
  that noisy image, as a test image's level is found).

  The denoiser computes in `config.compute_dtype` (see `precision`); the stage-1
  teacher, the noise synthesis and the loss in fp32.
  """
  model = precision.denoiser(model, precision.compute_dtype(config))
  s1_params = parallel.replicate(s1_params, parallel.make_mesh())
  add_noise = noise.from_config(s1_config.noise)
  m = config.data.target_margin
  p = config.data.patch_size
  num_models = num_images if s1_config.noise_model.per_image else 0
  lam, scale_range = config.distill.lam, tuple(config.distill.scale_range)
  weighting = config.distill.get("weighting", "pixels")
  rw = realworld.settings(s1_config)
  sub = distill_domain(config) == "subimages"
  teacher = stage1_target_fn(s1_config, s1_model, filtered=not sub)
  fixed = fixed_pairs(config, s1_config)
  # On sub-images the network learns what stage 1's D-BSN + Bayes rule does there: the
  # pairs are the f^2 sub-images of each (noisy, target) patch.
  to_domain = (lambda v: realworld.unshuffle(v, rw.downsample)) if sub else (lambda v: v)
  takes_level = getattr(model, "level_input", False)
  if takes_level and real_levels is None and \
      mixed.split_batch(config.data.batch_size, config.data.real_fraction)[1]:
    raise ValueError("a level_input network with real pairs needs their levels (real_levels)")
  real_levels = None if real_levels is None else jnp.asarray(real_levels, jnp.float32)

  def step(state, batch, s1p):
    key = jax.random.fold_in(state.key, state.step)
    k_syn, k_real = jax.random.split(key)
    x = jnp.asarray(batch["clean"], jnp.float32)
    y_syn, cov, scale = synthesize(k_syn, x, s1_model, s1p, num_models, scale_range, rw,
                                   levels, with_scale=True)
    real = jnp.asarray(batch["real"], jnp.float32)
    ids = jnp.asarray(batch["real_id"], jnp.int32)
    c = x.shape[-1]
    if not real.shape[0]:
      x_hat = y_real = jnp.zeros((0, p, p, c), jnp.float32)
    elif fixed:  # (noisy, stage-1 target) pairs made once, up front.
      y_real, x_hat = real[..., :c], real[..., c:]
    else:  # Synthetic noise: fresh noise, target on the fly (margin m of context).
      y_real = add_noise(k_real, real, ids)[0]
      x_hat = teacher(s1p, y_real, ids)[:, m:m + p, m:m + p]
      y_real = y_real[:, m:m + p, m:m + p]
    x, y_syn, y_real, x_hat = (to_domain(v) for v in (x, y_syn, y_real, x_hat))
    inputs, level = jnp.concatenate([y_syn, y_real]), None
    if takes_level:  # The noise std map each patch is told.
      real_std = real_levels[ids] if y_real.shape[0] else jnp.zeros((0,), jnp.float32)
      level = predict.level_map(jnp.concatenate([synthetic_stds(cov, scale), real_std]),
                                inputs)

    def loss_fn(params):
      out, stats = apply_denoiser(model, params, state.batch_stats, inputs, train=True,
                                  level=level)
      out = precision.to_float32(out)
      n = x.shape[0]
      return distill_loss(out[:n], x, out[n:], jax.lax.stop_gradient(x_hat), lam,
                          weighting), (out, stats)

    (loss, (out, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    new_state, ok = state_lib.guarded_update(state, grads, loss, batch_stats=stats)
    metrics_out = {"loss": loss, "finite": ok, "grad_norm": optax.global_norm(grads)}
    if x.shape[0]:
      metrics_out["psnr_synthetic"] = jnp.mean(metrics.psnr(out[:x.shape[0]], x))
    return new_state, metrics_out

  jitted = jax.jit(step, donate_argnums=0)
  return lambda state, batch: jitted(state, batch, s1_params)


def create_state(config, model):
  """Fresh denoiser parameters (and BatchNorm statistics), Adam state, noise key, in one
  compiled program."""
  tx = state_lib.make_optimizer(config.optim, config.train.num_steps)

  def init(seed):
    k_init, k_noise = jax.random.split(jax.random.PRNGKey(seed + 1))
    p = config.data.patch_size
    level = jnp.zeros((1, p, p, 1)) if model.level_input else None
    variables = model.init(k_init, jnp.zeros((1, p, p, config.channels)), mask=None,
                           level=level)
    return state_lib.TrainState.create(apply_fn=model.apply, params=variables["params"],
                                       tx=tx, key=k_noise,
                                       batch_stats=variables.get("batch_stats", {}))
  return jax.jit(init)(config.seed)


def make_stage2_fn(model, config=None):
  """Jitted `(params, batch_stats, y (B, H, W, C)) -> x_hat`: the whole stage-2 denoiser
  of `config` (a sub-image network reassembled and guided-filtered; default: the
  network on the photo)."""
  rw = realworld.settings(config) if config is not None else realworld.Settings()
  domain = distill_domain(config) if config is not None else "full"
  local = predict.stage2_local_fn(model, rw, domain)
  post = predict.stage2_post_fn(rw, domain) or (lambda v, x: x)
  takes_level = getattr(model, "level_input", False)

  def denoise(params, stats, y):
    v = {"params": params, "batch_stats": stats}
    return post(v, local(v, predict.with_level(y) if takes_level else y))
  return jax.jit(denoise)


def evaluate(model, state, data, denoise=None) -> Dict[str, float]:
  """Mean PSNR / SSIM (`psnr_stage2`, `ssim_stage2`) of the distilled denoiser on stage
  1's eval set: its EMA weights where it keeps them, and then also its raw weights
  (`psnr_stage2_raw`), so the average's gain shows."""
  denoise = denoise or make_stage2_fn(model)
  ema = state_lib.ema_params(state)
  weights = ({"stage2": state.params} if ema is None
             else {"stage2": ema, "stage2_raw": state.params})

  def predict(i, y):
    return {k: denoise(w, state.batch_stats, jnp.asarray(y)[None])[0]
            for k, w in weights.items()}
  return metrics.flat_means(metrics.summarize(metrics.score_set(predict, data[0], data[1])))


def disjoint_clean(clean: sources.ImageSet, real: sources.ImageSet, config) -> sources.ImageSet:
  """The clean set without the images that overlap stage 1's noisy ones (logged)."""
  kept, dropped = overlap.drop_overlap(clean, real)
  if not kept.images:
    raise ValueError(f"every clean image of stage2.data.clean={config.data.clean!r} shows a "
                     "scene of stage 1's noisy training set (a crop of one, or the same image); "
                     "unpaired learning needs different images (or set "
                     "stage2.data.drop_overlap=False)")
  if dropped:
    logging.warning("stage2.data.clean: left out %d of %d images that contain a stage-1 "
                    "noisy image as a crop or are one: %s", len(dropped), len(clean),
                    ", ".join(dropped[:8]) + (" ..." if len(dropped) > 8 else ""))
  return kept


def train_and_evaluate(config, workdir: str) -> Dict[str, Any]:
  """Distil the stage-1 run in config.stage1_workdir into a denoiser in `workdir`."""
  with workdir_lock.for_run(workdir):  # Two runs on one workdir would wreck both.
    return _train_and_evaluate(config, workdir)


def _train_and_evaluate(config, workdir: str) -> Dict[str, Any]:
  if not config.stage1_workdir:
    raise ValueError("stage1_workdir is not set (the stage-1 workdir to distil)")
  s1_config, s1_model, s1_params = stage1.load(config.stage1_workdir,
                                                mesh=parallel.make_mesh())
  validate(config, s1_config)
  sub = distill_domain(config) == "subimages"
  if sub:  # The denoiser needs stage 1's f and guided filter: saved with its config.
    with config.unlocked():
      config.realworld = ml_collections.ConfigDict(s1_config.realworld.to_dict())
  real = sources.load(s1_config.data.train, s1_config.channels, s1_config.data.train_start,
                      s1_config.data.train_stop or None)
  clean = sources.load(config.data.clean, config.channels, config.data.clean_start,
                       config.data.clean_stop or None)
  if config.data.drop_overlap:
    clean = disjoint_clean(clean, real, config)
  num_images = len(real)
  model = build_denoiser(config)
  state = create_state(config, model)
  # One element per device (each with the same clean/real split), stacked into this
  # process's local batches in global order (see parallel).
  real_images, margin = real.images, config.data.target_margin
  fixed, source, levels = fixed_pairs(config, s1_config), level_source(config, s1_config), None
  # With no real patches in a batch (`data.real_fraction = 0`) the stage-1 targets are
  # never read: skip running the teacher over every training image.
  fixed = fixed and mixed.split_batch(config.data.batch_size, config.data.real_fraction)[1] > 0
  if fixed or source:  # Made once, on whole images.
    noisy = fixed_noisy_images(real.images, s1_config, config.seed)
    if fixed or source in ("own_image", "fitted"):
      pairs, own = stage1_on_images(noisy, s1_config, s1_model,
                                    parallel.local_copy(s1_params), filtered=not sub,
                                    fitted=source == "fitted")
      if fixed:
        real_images, margin = pairs, 0
      if source in ("own_image", "fitted"):
        levels = own
    if source in ("estimated", "estimated_pooled"):
      levels = estimated_levels(noisy, max(realworld.settings(s1_config).downsample, 1))
    if source == "estimated_pooled":
      levels = pooled_level(levels)
  real_levels = None
  if model.level_input and mixed.split_batch(config.data.batch_size,
                                             config.data.real_fraction)[1] > 0:
    # What the network is told on a real patch: the classical estimate on its image, as
    # on a test image (the pairs' own noisy images, drawn once: `fixed_noisy_images`).
    same = source == "estimated" and levels.shape[1] == 1
    real_levels = level_stds(levels if same else estimated_levels(noisy))
  if levels is not None:
    std = np.sqrt(np.diagonal(levels, axis1=-2, axis2=-1)) * 255
    logging.info("stage 2 synthesises noise at each training image's level (%s): std "
                 "min %.2f median %.2f max %.2f (/255)", source, std.min(), np.median(std),
                 std.max())
  ds = parallel.stack_devices(mixed.mixed_dataset(
      clean.images, real_images, config.data.patch_size, margin,
      config.data.batch_size, config.data.real_fraction, config.seed, config.data.augment))
  data = stage1.eval_set(s1_config) if s1_config.eval.source else None
  denoise = make_stage2_fn(model, config)
  evaluate_fn = (lambda st, step: evaluate(model, st, data, denoise)) if data else None
  step = make_train_step(config, model, s1_config, s1_model, s1_params, num_images,
                         None if levels is None else jnp.asarray(levels), real_levels)

  def tb_images(st):
    """The dbsn-eval grid of the first eval image (noisy, stage 2, clean), process 0."""
    if jax.process_index():
      return {}
    y = data[0][0]
    x_hat = np.asarray(denoise(state_lib.eval_params(st), st.batch_stats, jnp.asarray(y)[None])[0])
    return {"eval/grid": report.training_grid(y, {"stage 2": x_hat}, data[1][0])}

  state = loop.run(config, workdir, state, step, ds, evaluate_fn, tb_images if data else None)
  complete = int(state.step) >= config.train.num_steps  # False when stopped by a signal.
  results = evaluate(model, parallel.local_copy(state), data, denoise) \
      if data and complete else {}
  return {"state": state, "model": model, "eval": results, "data": data,
          "stage1": (s1_config, s1_model, s1_params), "complete": complete}


def load(workdir: str):
  """Restore a stage-2 workdir from its newest checkpoint: (config, model, state)."""
  saved = checkpoints.read_config(workdir)
  if saved.get("stage") != "stage2":
    raise ValueError(f"{workdir} holds a {saved.get('stage', 'unknown')!r} checkpoint, "
                     "expected a 'stage2' one (train it with dbsn-distill)")
  config = ml_collections.ConfigDict(saved)
  model = build_denoiser(config)
  target = state_lib.restore_target(lambda: create_state(config, model))
  state = checkpoints.restore(checkpoints.manager(workdir, create=False), target)[0]
  return config, model, state
