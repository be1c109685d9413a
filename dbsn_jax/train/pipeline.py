"""The whole unpaired pipeline: stage 1, stage 2, then one evaluation table."""
import json
import os
from typing import Dict

import jax
import numpy as np

from dbsn_jax import inference, report
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
    out = {"denoised": denoise_photos(config.stage1, workdir, s1_dir, s2_dir)}
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


def denoise_photos(s1_config, workdir: str, s1_dir: str, s2_dir: str, grid_rows: int = 3):
  """Denoise stage 1's noisy photos with the distilled network at full size (and, for the
  grid, with stage 1); write `WORKDIR/denoised/NAME.png` and `grid.png`. Returns the
  output directory."""
  photos = sources.load(s1_config.data.train, s1_config.channels, s1_config.data.train_start,
                        s1_config.data.train_stop or None)
  d1, d2 = inference.from_workdir(s1_dir), inference.from_workdir(s2_dir)
  out_dir = os.path.join(workdir, "denoised")
  rows = []
  for i, (name, y) in enumerate(zip(photos.names, photos.images)):
    x = d2(y)
    if jax.process_index() == 0:
      os.makedirs(out_dir, exist_ok=True)
      pixels = np.round(x * 255.0).astype(np.uint8)
      image_io.write(os.path.join(out_dir, name + ".png"),
                     pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    if i < grid_rows:
      rows.append((name, [("noisy", y, None), ("stage 1", d1(y), None), ("stage 2", x, None)]))
  if rows and jax.process_index() == 0:
    report.save(report.grid_figure(rows), os.path.join(out_dir, "grid.png"))
  return out_dir


def load_results(workdir: str) -> Dict:
  with open(os.path.join(workdir, "results.json")) as f:
    return json.load(f)
