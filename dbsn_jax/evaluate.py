"""Score a denoiser on a benchmark set with the paper's protocol (docs/design.md section 9).

Noise is seeded per image (the same noisy images in every run), the noisy input is not
clipped, PSNR is on the clipped output over all channels with no border crop, and the
set's score is the mean of per-image scores.
"""
import os
import time
from typing import Dict

import numpy as np

from dbsn_jax import defaults, metrics
from dbsn_jax.baselines import (  # noqa: F401 (re-exported)
    BM3D_ESTIMATED, BM3D_PSD, BM3D_TRUE, GUIDED_NOISY, bm3d_available, bm3d_column,
    bm3d_denoise, bm3d_methods, estimated_noise_cov, guided_filter_noisy, true_noise_cov,
    true_noise_psd)
from dbsn_jax.data import benchmarks, sources
from dbsn_jax.data.noisy_sets import centre_crop, noisy_set  # noqa: F401 (re-exported)
from dbsn_jax.inference import load_denoiser
from dbsn_jax.metrics import image_scores  # noqa: F401 (re-exported)


def awgn_scores(denoiser, source: str, sigmas, stop=None) -> Dict[str, Dict[str, float]]:
  """`score` of a denoiser on `source` under AWGN at each sigma (0-255 scale)."""
  results = {}
  for sigma in sigmas:
    cfg = defaults.stage1().noise
    cfg.kind, cfg.sigma = "awgn", float(sigma)
    noisy, clean, _, _ = noisy_set(source, denoiser.channels, cfg, stop=stop)
    results[str(sigma)] = score(denoiser, noisy, clean)
  return results


def score(denoiser, noisy, clean) -> Dict[str, float]:
  """Mean PSNR / SSIM of the noisy input and of the denoised images."""
  predict = lambda i, y: {"noisy": y,  # noqa: E731
                          "denoised": np.asarray(denoiser.run(np.asarray(y, np.float32)[None])[0])}
  m = metrics.summarize(metrics.score_set(predict, noisy, clean))
  return {"psnr_noisy": m["noisy"]["psnr"], "psnr": m["denoised"]["psnr"],
          "ssim_noisy": m["noisy"]["ssim"], "ssim": m["denoised"]["ssim"],
          "num_images": m["denoised"]["num_images"]}


# -- named benchmark suites (dbsn-eval) -----------------------------------------------
# Set names of dbsn_jax.data.benchmarks map to their TFDS builders; CC15 is a real-noise
# pair (clean, noisy). 'pairs:DIR' (or 'pairs:shared:NAME') is any folder of pairs in
# DIR/noisy and DIR/clean under the same file names, as tools/camera_sim.py writes them.
# Any other image source spec is used as a clean set as it is.
REAL_PAIRS = {"cc15": ("tfds:cc15", "tfds:cc15:test:noisy")}


def real_pair_specs(set_name: str):
  """A set name -> (clean spec, noisy spec) of its real noisy pairs, or None."""
  key = set_name.lower()
  if key in REAL_PAIRS:
    return REAL_PAIRS[key]
  if not set_name.startswith("pairs:"):
    return None
  root = set_name[len("pairs:"):]
  if not root:
    raise ValueError("set 'pairs:' needs a folder: pairs:DIR with DIR/noisy and DIR/clean")
  if root.startswith("shared:"):
    return f"{root}/clean", f"{root}/noisy"
  root = root[len("folder:"):] if root.startswith("folder:") else root
  for sub in ("noisy", "clean"):
    if not os.path.isdir(os.path.join(root, sub)):
      raise ValueError(f"set {set_name}: no folder {os.path.join(root, sub)} (pairs:DIR "
                       "needs DIR/noisy and DIR/clean with the same file names)")
  return f"folder:{os.path.join(root, 'clean')}", f"folder:{os.path.join(root, 'noisy')}"


def noise_setting(name: str):
  """A noise setting name -> (label, noise ConfigDict).

  '25' or 'awgn25': AWGN sigma 25 (0-255); 'hg' (or 'hg40-10'): heteroscedastic
  Gaussian alpha 40, delta 10 in the reference form that produced the paper's numbers
  (docs/design.md section 5); 'hg_paper': var = alpha^2 x + delta^2; 'mg' (or 'mg75'): multivariate
  Gaussian, scale 75; 'real': the set's own noisy photos (CC15).
  """
  cfg = defaults.stage1().noise
  s = name.strip().lower()
  try:
    if s.replace(".", "", 1).isdigit() or s.startswith("awgn"):
      cfg.kind, cfg.sigma = "awgn", float(s[4:] if s.startswith("awgn") else s)
      return f"awgn{cfg.sigma:g}", cfg
    if s.startswith("hg"):
      body = s[2:]
      cfg.kind, cfg.hetero_form = "hetero", "reference"
      if body == "_paper":
        cfg.hetero_form, body = "paper", ""
      if body:
        cfg.alpha, cfg.delta = (float(v) for v in body.replace("/", "-").split("-"))
      suffix = "_paper" if cfg.hetero_form == "paper" else ""
      return f"hg{cfg.alpha:g}-{cfg.delta:g}{suffix}", cfg
    if s.startswith("mg"):
      cfg.kind = "multivariate"
      cfg.mg_scale = float(s[2:]) if s[2:] else cfg.mg_scale
      return f"mg{cfg.mg_scale:g}", cfg
  except ValueError:
    pass
  if s == "real":
    cfg.kind = "none"
    return "real", cfg
  raise ValueError(f"unknown noise setting {name!r}: use SIGMA or awgnSIGMA (e.g. 25), "
                   "hg, hgALPHA-DELTA, hg_paper, mg, mgSCALE or real")


def set_channels(name: str):
  """Native channel count of a named benchmark set (None for other specs)."""
  spec = benchmarks.SPECS.get(name.lower())
  return spec.channels if spec else None


def load_case(set_name: str, setting: str, channels: int, seed: int = 1234,
              stop=None, crop: int = 0):
  """(noisy, clean, true covs or None, names) of one set under one noise setting.

  Named sets read through their TFDS builders; synthetic noise is seeded per image
  (noisy_set); 'real' needs a paired set (CC15).
  """
  key = set_name.lower()
  native = set_channels(key)
  if native is not None and native != channels:
    raise ValueError(f"set {set_name} is {'gray' if native == 1 else 'color'} but the "
                     f"models take {channels}-channel images")
  _, cfg = noise_setting(setting)
  specs = real_pair_specs(set_name)
  if cfg.kind == "none":
    if specs is None:
      raise ValueError(f"noise setting 'real' needs a set with real noisy photos "
                       f"({', '.join(REAL_PAIRS)} or pairs:DIR), got {set_name}")
    clean = sources.load(specs[0], channels, 0, stop)
    noisy = sources.load(specs[1], channels, 0, stop)
    if clean.names != noisy.names:
      raise ValueError(f"set {set_name}: the noisy and clean photos must have the same "
                       f"names; only in one of them: "
                       f"{sorted(set(clean.names) ^ set(noisy.names))[:5]}")
    for y, x, name in zip(noisy.images, clean.images, clean.names):
      if y.shape != x.shape:
        raise ValueError(f"set {set_name}: {name} is {y.shape[:2]} noisy but "
                         f"{x.shape[:2]} clean")
    return ([centre_crop(y, crop) for y in noisy.images],
            [centre_crop(x, crop) for x in clean.images], None, clean.names)
  # A real pair set under synthetic noise: its clean photos, like any clean set.
  source = (f"tfds:{key}" if key in benchmarks.SPECS else
            specs[0] if specs else set_name)
  return noisy_set(source, channels, cfg, seed, 0, stop, crop)


def noise_levels(denoiser, noisy: np.ndarray):
  """A stage-1 model's estimated noise covariance `(H, W, C, C)` on one noisy image.

  The Sigma_n that denoised the image (`Denoiser.noise_cov`, jitted): CNN_est on the
  denoiser's own D-BSN output, the per-image model chosen by the likelihood of y - mu;
  per sub-image for down-sampled models.
  """
  if denoiser.kind != "stage1":
    raise ValueError("noise levels need a stage-1 model (it holds the noise estimator)")
  return np.asarray(denoiser.noise_cov(np.asarray(noisy, np.float32)[None])[0])


def noise_level_function(clean: np.ndarray, cov: np.ndarray, bins: int = 32):
  """Noise std (0-255) per intensity bin and channel: `(centres (bins,), std (bins, C))`.

  Pixels are binned by their clean intensity; a bin's std is sqrt of its mean variance
  (NaN where no pixel falls). `cov` is `(H, W, C, C)`.
  """
  c = clean.shape[-1]
  var = np.diagonal(np.asarray(cov, np.float64), axis1=-2, axis2=-1).reshape(-1, c)
  x = np.asarray(clean, np.float64).reshape(-1, c)
  idx = np.clip((x * bins).astype(int), 0, bins - 1)
  out = np.full((bins, c), np.nan)
  for ch in range(c):
    total = np.bincount(idx[:, ch], var[:, ch], bins)
    count = np.bincount(idx[:, ch], minlength=bins)
    ok = count > 0
    out[ok, ch] = 255.0 * np.sqrt(total[ok] / count[ok])
  return 255.0 * (np.arange(bins) + 0.5) / bins, out


def model_label(denoiser, path: str, taken) -> str:
  """'stage 1' / 'stage 2' by kind; the path's name is appended when that is taken."""
  label = {"stage1": "stage 1", "stage2": "stage 2"}.get(denoiser.kind, denoiser.kind)
  if label in taken:
    label = f"{label} ({os.path.basename(os.path.normpath(path))})"
  return label


def parse_models(entries):
  """`[LABEL=]PATH` entries -> {label: (path, Denoiser)}; all must share channels."""
  models = {}
  for entry in entries:
    label, sep, path = entry.partition("=")
    if not sep:
      label, path = "", entry
    # Exact image sizes (no size buckets): a stage-1 CNN_est that averages over the image
    # must not see bucket padding (it shifts BSD68 PSNR by ~0.1 dB).
    d = load_denoiser(path.strip(), bucket=False)
    label = label.strip() or model_label(d, path, models)
    if label in models:
      raise ValueError(f"two models are labelled {label!r}; label them: LABEL=PATH")
    models[label] = (path.strip(), d)
  channels = {d.channels for _, d in models.values()}
  if len(channels) != 1:
    raise ValueError(f"the models take different channel counts {sorted(channels)}; "
                     "evaluate gray and color models separately")
  return models


def run_case(models, set_name: str, setting: str, seed: int = 1234, stop=None,
             crop: int = 0, bm3d: bool = False, keep: int = 3, progress=None,
             ensemble: bool = False, bm3d_levels=("estimated",)):
  """Score every method on one (set, noise) case; with `ensemble`, every model that
  allows it also as method `ensemble_label(label)` (the mean over 8 flips/rotations);
  `bm3d_levels`: the levels BM3D gets on real noise (`baselines.bm3d_methods`).

  Returns dict(rows=[{image, method, psnr, ssim}], keep=[(name, {method: image})] for the
  first `keep` images with 'noisy' and 'clean', nlf={label: (x, std)}, nlf_true).
  """
  channels = next(iter(models.values()))[1].channels
  noisy, clean, covs, names = load_case(set_name, setting, channels, seed, stop, crop)
  # Real noise has no known level to give BM3D: it gets the level estimated from each
  # noisy image, as a user would run it, and/or (an oracle) the pair's own.
  bm3d_cols = bm3d_methods(covs is None, bm3d_levels) if bm3d else []
  rows, kept, seconds = [], [], {}
  # Noise-level curves for stage-1 models at full resolution (not real-photo models
  # that run on pixel-shuffled sub-images).
  est_nlf = {label: [] for label, (_, d) in models.items() if d.kind == "stage1"
             and int((d.config or {}).get("realworld", {}).get("downsample", 1)) <= 1}
  if covs is None:
    est_nlf = {}
  for i, (y, x, name) in enumerate(zip(noisy, clean, names)):
    outs = {"noisy": y}
    for label, (_, d) in models.items():
      t = time.time()
      outs[label] = np.asarray(d.run(np.asarray(y, np.float32)[None])[0])
      seconds[label] = seconds.get(label, 0.0) + time.time() - t
      if ensemble and d.dihedral_ok:
        t, e = time.time(), ensemble_label(label)
        outs[e] = np.asarray(d.run(np.asarray(y, np.float32)[None], ensemble=True)[0])
        seconds[e] = seconds.get(e, 0.0) + time.time() - t
    if covs is None:
      outs[GUIDED_NOISY] = guided_filter_noisy(y)
    for method in bm3d_cols:
      t = time.time()
      outs[method] = bm3d_column(method, y, x, None if covs is None else covs[i])
      seconds[method] = seconds.get(method, 0.0) + time.time() - t
    rows += metrics.image_rows(name, outs, x)
    if i < keep:
      kept.append((name, {**outs, "clean": x}))
      for label in est_nlf:
        est_nlf[label].append(noise_levels(models[label][1], y))
    if progress:
      progress(i + 1, len(noisy))
  out = {"rows": rows, "keep": kept, "seconds": seconds, "num_images": len(noisy),
         "nlf": {}, "nlf_true": None}
  if est_nlf and kept:
    xs = np.concatenate([k[1]["clean"].reshape(-1, channels) for k in kept])[:, None]
    for label, cs in est_nlf.items():
      c = np.concatenate([v.reshape(-1, channels, channels) for v in cs])[:, None]
      out["nlf"][label] = noise_level_function(xs, c)
    true = np.concatenate([covs[i].reshape(-1, channels, channels)
                           for i in range(len(kept))])[:, None]
    out["nlf_true"] = noise_level_function(xs, true)
  return out


def ensemble_label(label: str) -> str:
  """The method name of a model's self-ensemble."""
  return f"{label} x8"


summarize = metrics.summarize  # dbsn-eval's table: the one summary of per-image rows.
