"""The whole unpaired pipeline: stage 1, stage 2, then one evaluation table."""
import json
import os
from typing import Dict

import jax
import numpy as np

from dbsn_jax import evaluate, inference, report
from dbsn_jax.data import image_io, sources
from dbsn_jax.train import checkpoints, stage1, stage2, workdir_lock


def results_table(s1: Dict[str, float], s2: Dict[str, float]) -> Dict[str, Dict[str, float]]:
  """Rows noisy / stage 1 mu / stage 1 Bayes / stage 2, columns psnr and ssim."""
  rows = {"noisy input": {"psnr": s1["psnr_noisy"], "ssim": s1["ssim_noisy"]},
          "stage 1 (mu)": {"psnr": s1["psnr_mu"], "ssim": s1["ssim_mu"]},
          "stage 1 (Bayes)": {"psnr": s1["psnr_bayes"], "ssim": s1["ssim_bayes"]}}
  if "psnr_filtered" in s1:  # Real photos: the reassembled estimate, guided-filtered.
    rows["stage 1 (guided filter)"] = {"psnr": s1["psnr_filtered"], "ssim": s1["ssim_filtered"]}
  if s2:
    rows["stage 2"] = {"psnr": s2["psnr_stage2"], "ssim": s2["ssim_stage2"]}
  return rows


def run(config, workdir: str) -> Dict:
  """Train (or resume) both stages under `workdir`, evaluate, write results.json."""
  with workdir_lock.for_run(workdir):
    return _run(config, workdir)


def _run(config, workdir: str) -> Dict:
  s1_dir, s2_dir = os.path.join(workdir, "stage1"), os.path.join(workdir, "stage2")
  stage1.validate(config.stage1)
  s1 = stage1.train_and_evaluate(config.stage1, s1_dir)
  if not s1["complete"]:  # Stopped by a signal: do not distil an unfinished stage 1.
    return {"interrupted": "stage 1"}
  with config.stage2.unlocked():
    config.stage2.stage1_workdir = s1_dir
  s2 = stage2.train_and_evaluate(config.stage2, s2_dir)
  if not s2["complete"]:
    return {"interrupted": "stage 2"}
  ec = config.stage1.eval
  if not s1["eval"]:  # No ground truth (a user's own noisy photos): denoise them.
    out_dir, levels = denoise_photos(config.stage1, workdir, s1_dir, s2_dir)
    out = {"denoised": out_dir, "noise_levels": levels}
    if jax.process_index() == 0:
      checkpoints.write_json(os.path.join(workdir, "results.json"), out)
    return out
  rows = results_table(s1["eval"], s2["eval"])
  out = {"eval_set": ec.source, "num_images": len(s2["data"][0]) if s2["data"] else 0,
         "crop": ec.crop, "noise": config.stage1.noise.to_dict(), "results": rows,
         "noise_std": s1["noise_std"]}
  if jax.process_index() == 0:  # Multi-host: one writer.
    checkpoints.write_json(os.path.join(workdir, "results.json"), out)
  return out


def denoise_photos(s1_config, workdir: str, s1_dir: str, s2_dir: str, grid_rows: int = 3,
                   noise_crop: int = 1024):
  """Denoise stage 1's noisy photos with the distilled network (and, for the
  grid, with stage 1); write `WORKDIR/denoised/NAME.png`, `grid.png` and
  `noise_levels.png` (stage 1's noise std against intensity, per channel, over all
  photos). Returns (the output directory, each photo's learned noise std per channel,
  0-255, on a centre crop of at most `noise_crop` pixels a side)."""
  photos = sources.load(s1_config.data.train, s1_config.channels, s1_config.data.train_start,
                        s1_config.data.train_stop or None)
  d1, d2 = inference.from_workdir(s1_dir), inference.from_workdir(s2_dir)
  out_dir = os.path.join(workdir, "denoised")
  rows, levels, xs, covs = [], [], [], []
  for i, (name, y) in enumerate(zip(photos.names, photos.images)):
    x = d2(y)
    if jax.process_index() == 0:
      os.makedirs(out_dir, exist_ok=True)
      pixels = np.round(x * 255.0).astype(np.uint8)
      image_io.write(os.path.join(out_dir, name + ".png"),
                     pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    if i < grid_rows:
      rows.append((name, [("noisy", y, None), ("stage 1", d1(y), None), ("stage 2", x, None)]))
    top, left, crop = _centre_crop(y.shape, noise_crop, d1.multiple)
    cov = evaluate.noise_levels(d1, y[top:top + crop[0], left:left + crop[1]])
    var = np.diagonal(cov, axis1=-2, axis2=-1).reshape(-1, cov.shape[-1]).mean(0)
    levels.append({"photo": name, "std": [round(float(v), 3) for v in 255 * np.sqrt(var)]})
    step = max(1, int(np.sqrt(cov.shape[0] * cov.shape[1] / 2.5e5)))  # ~250k pixels each.
    xs.append(x[top:top + crop[0]:step, left:left + crop[1]:step].reshape(-1, 1, x.shape[-1]))
    covs.append(cov[::step, ::step].reshape((-1, 1) + cov.shape[-2:]))
  if jax.process_index() == 0 and rows:
    report.save(report.grid_figure(rows), os.path.join(out_dir, "grid.png"))
    curve = evaluate.noise_level_function(np.concatenate(xs), np.concatenate(covs))
    report.save(report.curves_figure({"stage 1": curve}, None,
                                     "learned noise level (std, 0-255) against intensity"),
                os.path.join(out_dir, "noise_levels.png"))
  return out_dir, levels


def _centre_crop(shape, side: int, multiple: int):
  """(top, left, (h, w)): a centre crop of at most `side` pixels a side, at multiples."""
  h, w = (min(n, max(multiple, side // multiple * multiple)) for n in shape[:2])
  top = (shape[0] - h) // 2 // multiple * multiple
  left = (shape[1] - w) // 2 // multiple * multiple
  return top, left, (h, w)


def load_results(workdir: str) -> Dict:
  with open(os.path.join(workdir, "results.json")) as f:
    return json.load(f)
