"""Stage 1: self-supervised D-BSN + CNN_est on noisy images (docs/design.md sections 2-6).

Data -> model -> loss -> train step: the grain pipeline yields clean (or already noisy)
patches, the jitted step adds fresh synthetic noise from its PRNG key, runs D-BSN and
CNN_est, and minimises the constrained likelihood (Eq. 8).
"""
from typing import Any, Dict

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dbsn_jax import losses, metrics, noise, predict, realworld, report
from dbsn_jax.metrics import rms_std, true_noise_std  # noqa: F401 (re-exported)
from dbsn_jax.data import input_pipeline, noisy_sets, sources
from dbsn_jax.train import (checkpoints, loop, microbatch, parallel, precision,
                            state as state_lib, workdir_lock)


LOSS_KINDS = ("constrained", "gaussian", "constrained_then_gaussian")
BAYES_NOISE_LEVELS = predict.BAYES_NOISE_LEVELS
# The model and its prediction path live in `dbsn_jax.predict`; the names stay here too.
Stage1Model = predict.Stage1Model
build_model = predict.build_model
select_noise_models = predict.select_noise_models
make_denoise_fn = predict.make_denoise_fn
make_image_denoiser = predict.make_image_denoiser


def switch_step(config) -> int:
  """The step at which 'constrained_then_gaussian' changes from Eq. 8 to the plain NLL."""
  if config.loss.kind == "constrained":
    return config.train.num_steps + 1
  if config.loss.kind == "gaussian":
    return 0
  return int(round(config.loss.get("switch_fraction", 0.5) * config.train.num_steps))


def validate(config, num_images: int = 0) -> None:
  """Refuse a bad stage-1 config before any compute, naming the field."""
  if config.channels not in (1, 3):
    raise ValueError(f"channels must be 1 or 3, got {config.channels}")
  if config.noise_model.input not in ("mu", "y"):
    raise ValueError(f"noise_model.input must be 'mu' or 'y', got {config.noise_model.input!r}")
  if config.loss.kind not in LOSS_KINDS:
    raise ValueError(f"loss.kind must be one of {LOSS_KINDS}, got {config.loss.kind!r}")
  switch = config.loss.get("switch_fraction", 0.5)
  if not 0.0 < switch < 1.0:
    raise ValueError(f"loss.switch_fraction must be in (0, 1), got {switch}")
  weight = config.loss.get("final_constrained_weight", 0.0)
  if not 0.0 <= weight <= 1.0:
    raise ValueError(f"loss.final_constrained_weight must be in [0, 1], got {weight}")
  if config.noise_model.mode in ("multivariate", "hetero_multivariate") and \
      config.channels == 1:
    raise ValueError(f"noise_model.mode={config.noise_model.mode!r} needs channels=3")
  bayes = config.get("bayes", {})
  level = bayes.get("noise_level", "learned")
  if level not in BAYES_NOISE_LEVELS:
    raise ValueError(f"bayes.noise_level must be one of {BAYES_NOISE_LEVELS}, got {level!r}")
  if level == "estimated" and (config.noise_model.mode not in ("awgn", "multivariate")
                               or config.realworld.downsample > 1):
    raise ValueError("bayes.noise_level='estimated' measures white noise on the full image: "
                     "it needs noise_model.mode 'awgn' or 'multivariate' and "
                     f"realworld.downsample=1, got {config.noise_model.mode!r} and "
                     f"{config.realworld.downsample}")
  if config.noise.kind == "multivariate" and config.channels == 1:
    raise ValueError("noise.kind='multivariate' needs channels=3")
  for field in ("patch_size", "batch_size"):
    if config.data[field] <= 0:
      raise ValueError(f"data.{field} must be > 0, got {config.data[field]}")
  parallel.check_per_device(config.data.batch_size)
  micro = config.train.get("microbatch", 0)
  if micro < 0 or (micro and config.data.batch_size % micro):
    raise ValueError(f"train.microbatch ({micro}) must be 0 or divide data.batch_size "
                     f"({config.data.batch_size}, patches per device)")
  precision.compute_dtype(config)  # Raises on an unknown dtype.
  if config.train.num_steps <= 0:
    raise ValueError(f"train.num_steps must be > 0, got {config.train.num_steps}")
  noise.from_config(config.noise)  # Raises on bad noise settings.
  realworld.settings(config)  # Raises on bad down-sampling / guided-filter settings.
  build_model(config, num_images).dbsn.check()


def create_state(config, model: Stage1Model, num_images: int = 0) -> state_lib.TrainState:
  """Fresh parameters, Adam state and noise key from config.seed, in one compiled program
  (not one per optimizer-state leaf)."""
  tx = state_lib.make_optimizer(config.optim, config.train.num_steps)

  def init(seed):
    k_init, k_noise = jax.random.split(jax.random.PRNGKey(seed))
    p = config.data.patch_size
    y = jnp.zeros((1, p, p, config.channels), jnp.float32)
    params = model.init(k_init, y, jnp.zeros((1,), jnp.int32))["params"]
    return state_lib.TrainState.create(apply_fn=model.apply, params=params, tx=tx, key=k_noise)
  return jax.jit(init)(config.seed)


def loss_fn(params, model, y, image_ids, step, loss_cfg, gaussian_from=None):
  """The stage-1 objective and the model's outputs.

  During the first `l2_warmup_steps` steps mu learns by L2 to y (the blind-spot
  network's self-supervised regression, the reference's pre-training) while the
  covariance heads learn the likelihood of a gradient-stopped mu; then everything
  trains jointly by the likelihood: Eq. 8 until step `gaussian_from`, then the plain NLL
  with a small weight w of Eq. 8 kept (the reference's pre-train, fine-tune, in one run).
  Eq. 8 alone drives the noise variance towards sigma^2 + mu's error and Sigma_mu to zero;
  the plain NLL alone cannot tell Sigma_mu from Sigma_n (from scratch the noise level
  stays where it started; after Eq. 8 it drifts down, Adam-driven, along that flat
  direction). The small w pulls Sigma_mu down where mu is accurate, which pins the noise
  level at the residual's floor there: the noise.
  """
  if gaussian_from is None:  # Without a schedule: plain NLL only for kind 'gaussian'.
    gaussian_from = 0 if loss_cfg.kind == "gaussian" else 2**31 - 1
  mu, sigma_mu, sigma_n = precision.to_float32(model.apply({"params": params}, y, image_ids))
  warm = step < loss_cfg.l2_warmup_steps
  mu_nll = jnp.where(warm, jax.lax.stop_gradient(mu), mu)
  terms = (y, mu_nll, sigma_mu, sigma_n, loss_cfg.eps)
  # After the switch: (1 - w) plain + w Eq. 8, a small w (loss.final_constrained_weight)
  # for the schedule; kind 'gaussian' is the plain NLL alone.
  final = loss_cfg.get("final_constrained_weight", 0.0) \
      if loss_cfg.kind == "constrained_then_gaussian" else 0.0
  w = jnp.where(step >= gaussian_from, final, 1.0)
  nll = (1.0 - w) * losses.gaussian_nll(*terms) + w * losses.constrained_nll(*terms)
  l2 = losses.mse(mu, y)
  loss = nll + jnp.where(warm, l2 / 2e-3, 0.0)
  return loss, (mu, sigma_mu, sigma_n, l2)


def make_train_step(config, model: Stage1Model):
  """A jitted, pure `train_step(state, batch) -> (state, metrics)` (state donated).

  D-BSN computes in `config.compute_dtype` (see `precision`); the rest in fp32.
  """
  add_noise = noise.from_config(config.noise)
  model = precision.stage1_model(model, precision.compute_dtype(config))
  gaussian_from = switch_step(config)

  def train_step(state, batch):
    key = jax.random.fold_in(state.key, state.step)
    x = jnp.asarray(batch["image"], jnp.float32)
    ids = jnp.asarray(batch["image_id"], jnp.int32)
    if add_noise is not None:
      y, true_cov = add_noise(key, x, ids)
    else:
      y, true_cov = x, None
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, (mu, sigma_mu, sigma_n, l2)), grads = microbatch.accumulate(
        lambda yy, ii: grad_fn(state.params, model, yy, ii, state.step, config.loss,
                               gaussian_from),
        (y, ids), config.data.batch_size, config.train.get("microbatch", 0), state.params)
    new_state, ok = state_lib.guarded_update(state, grads, loss)
    out = {"loss": loss, "mse_mu_y": l2, "finite": ok, "grad_norm": optax.global_norm(grads),
           "noise_std": 255.0 * jnp.mean(jnp.sqrt(jnp.diagonal(sigma_n, axis1=-2, axis2=-1))),
           "sigma_mu_std": 255.0 * jnp.mean(jnp.sqrt(jnp.diagonal(sigma_mu, axis1=-2, axis2=-1)))}
    if y.shape[-1] > 1:  # Per channel, as the noise models of photos differ by channel.
      for c, v in enumerate(jnp.sqrt(jnp.mean(jnp.diagonal(sigma_n, axis1=-2, axis2=-1),
                                              axis=(0, 1, 2)))):
        out[f"noise_std_c{c}"] = 255.0 * v
    if true_cov is not None:
      out["noise_std_true"] = 255.0 * jnp.mean(
          jnp.sqrt(jnp.diagonal(true_cov, axis1=-2, axis2=-1)))
      out["psnr_mu"] = jnp.mean(metrics.psnr(mu, x))
      out["noise_std_error"] = metrics.noise_std_error(sigma_n, true_cov)
    return new_state, out

  return jax.jit(train_step, donate_argnums=0)


def eval_set(config):
  """(noisy, clean, true_cov or None, names) of the held-out set, noise seeded per image."""
  ec = config.eval
  stop = ec.stop or None
  if config.get("eval_noisy_source", ""):
    clean = sources.load(ec.source, config.channels, ec.start, stop)
    noisy = sources.load(config.eval_noisy_source, config.channels, ec.start, stop)
    crop = lambda ims: [noisy_sets.centre_crop(im, ec.crop) for im in ims]  # noqa: E731
    return crop(noisy.images), crop(clean.images), None, clean.names
  if noise.from_config(config.noise) is None:
    raise ValueError("noise.kind='none' needs eval_noisy_source (noisy images of the eval set)")
  return noisy_sets.noisy_set(ec.source, config.channels, config.noise, ec.seed, ec.start,
                              stop, ec.crop)


def evaluate(params, model: Stage1Model, data, denoise=None,
             rw: realworld.Settings = realworld.Settings(), details: bool = False):
  """Mean PSNR/SSIM of the noisy input, mu and the Bayes estimate (and its guided-filtered
  version) on `data`, and the learned noise std against the truth (`noise_std_learned`,
  `noise_std_true`, 0-255, RMS over pixels, mean over channels); `denoise` is a
  `make_image_denoiser` function. With `details`, also the per-image rows."""
  noisy, clean, covs, names = data
  denoise = denoise or make_image_denoiser(model, rw)
  names = list(names) if names is not None else [str(i) for i in range(len(noisy))]
  scores, rows = [], []
  for i, (y, x) in enumerate(zip(noisy, clean)):
    out = denoise(params, jnp.asarray(y)[None])
    images = {"noisy": y, **{k: out[k][0] for k in ("mu", "bayes", "filtered") if k in out}}
    image = metrics.image_rows(names[i], images, x)
    scores += image
    cnn_est = predict.learned_noise(out)
    learned = rms_std(cnn_est)
    true = true_noise_std(y, x, None if covs is None else covs[i])
    row = {"name": names[i], "noise_std_learned": float(learned.mean()),
           "noise_std_true": float(true.mean())}
    if covs is not None:
      row["noise_std_error"] = float(metrics.noise_std_error(cnn_est,
                                                             jnp.asarray(covs[i])[None]))
    row["noise_std_learned_per_channel"] = [round(float(v), 4) for v in learned]
    row["noise_std_true_per_channel"] = [round(float(v), 4) for v in true]
    row.update({f"{k}_{r['method']}": r[k] for r in image for k in ("psnr", "ssim")})
    rows.append(row)
  means = metrics.flat_means(metrics.summarize(scores))
  means.update({k: float(np.mean([r[k] for r in rows])) for k in
                ("noise_std_learned", "noise_std_true", "noise_std_error") if k in rows[0]})
  return (means, rows) if details else means


def noise_std_summary(rows) -> Dict[str, Any]:
  """results.json's "noise_std": the learned and true std (0-255) averaged over channels
  and images, with the per-image detail."""
  keep = ("name", "noise_std_learned", "noise_std_true", "noise_std_learned_per_channel",
          "noise_std_true_per_channel")
  learned = float(np.mean([r["noise_std_learned"] for r in rows]))
  true = float(np.mean([r["noise_std_true"] for r in rows]))
  return {"learned": round(learned, 4), "true": round(true, 4),
          "relative_error": round(learned / true - 1.0, 4) if true > 0 else None,
          "per_image": [{k: r[k] for k in keep} for r in rows]}


def train_and_evaluate(config, workdir: str) -> Dict[str, Any]:
  """Train stage 1 from `config` in `workdir` (resuming if possible); returns the final
  state and evaluation."""
  with workdir_lock.for_run(workdir):  # Two runs on one workdir would wreck both.
    return _train_and_evaluate(config, workdir)


def _train_and_evaluate(config, workdir: str) -> Dict[str, Any]:
  train = sources.load(config.data.train, config.channels, config.data.train_start,
                       config.data.train_stop or None)
  validate(config, len(train))
  rw = realworld.settings(config)
  model = build_model(config, len(train))
  state = create_state(config, model, len(train))
  images, ids = train.images, None
  if rw.downsample > 1:  # Train on the sub-images, each tagged with its noise model.
    images, ids = realworld.split_images(train.images, rw, config.noise_model.per_image)
  # Local batches of data.batch_size per device, in global order (see parallel).
  ds = input_pipeline.train_dataset(images, config.data.patch_size,
                                    parallel.local_batch_size(config.data.batch_size),
                                    config.seed, config.data.augment, image_ids=ids)
  data = eval_set(config) if config.eval.source else None
  denoise = make_image_denoiser(model, rw)
  evaluate_fn = (lambda st, step: evaluate(st.params, model, data, denoise, rw)) if data \
      else None

  def tb_images(st):
    """The dbsn-eval grid of the first eval image (noisy, mu, Bayes, clean), process 0."""
    if jax.process_index():
      return {}
    out = denoise(st.params, jnp.asarray(data[0][0])[None])
    outputs = {"stage 1 (mu)": np.asarray(out["mu"][0]), "stage 1": np.asarray(out["bayes"][0])}
    return {"eval/grid": report.training_grid(data[0][0], outputs, data[1][0])}

  state = loop.run(config, workdir, state, make_train_step(config, model), ds,
                   evaluate_fn, tb_images if data else None,
                   extra={"num_images": len(train)})
  complete = int(state.step) >= config.train.num_steps  # False when stopped by a signal.
  params = parallel.local_copy(state.params)
  results, rows = evaluate(params, model, data, denoise, rw, details=True) \
      if data and complete else ({}, [])
  return {"state": state, "model": model, "eval": results, "num_images": len(train),
          "complete": complete, "noise_std": noise_std_summary(rows) if rows else None}


def load(workdir: str, step=None, mesh=None):
  """Restore a finished or running stage-1 workdir: (config, model, params).

  The config comes from the checkpoint itself, so only the path is needed. With a
  device `mesh` the arrays are restored replicated over it (multi-device training).
  """
  import ml_collections
  saved = checkpoints.read_config(workdir)
  if saved.get("stage") != "stage1":
    raise ValueError(f"{workdir} holds a {saved.get('stage', 'unknown')!r} checkpoint, "
                     "expected a 'stage1' one (train it with dbsn-train)")
  num_images = int(saved.pop("num_images", 0))
  config = ml_collections.ConfigDict(saved)
  model = build_model(config, num_images)
  target = state_lib.restore_target(lambda: create_state(config, model, num_images))
  if mesh is not None:
    target = parallel.replicate(target, mesh)
  restored = checkpoints.restore(checkpoints.manager(workdir, create=False), target, step)
  return config, model, restored[0].params
