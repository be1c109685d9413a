"""The whole unpaired pipeline: stage 1, stage 2, then one evaluation table."""
import json
import os
from typing import Dict

import jax

from dbsn_jax.train import checkpoints, stage1, stage2


def results_table(s1: Dict[str, float], s2: Dict[str, float]) -> Dict[str, Dict[str, float]]:
  """Rows noisy / stage 1 mu / stage 1 Bayes / stage 2, columns psnr and ssim."""
  rows = {"noisy input": {"psnr": s1["psnr_noisy"], "ssim": s1["ssim_noisy"]},
          "stage 1 (mu)": {"psnr": s1["psnr_mu"], "ssim": s1["ssim_mu"]},
          "stage 1 (Bayes)": {"psnr": s1["psnr_bayes"], "ssim": s1["ssim_bayes"]}}
  if s2:
    rows["stage 2"] = {"psnr": s2["psnr_stage2"], "ssim": s2["ssim_stage2"]}
  return rows


def run(config, workdir: str) -> Dict:
  """Train (or resume) both stages under `workdir`, evaluate, write results.json."""
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
  rows = results_table(s1["eval"], s2["eval"])
  out = {"eval_set": ec.source, "num_images": len(s2["data"][0]) if s2["data"] else 0,
         "crop": ec.crop, "noise": config.stage1.noise.to_dict(), "results": rows}
  if jax.process_index() == 0:  # Multi-host: one writer.
    checkpoints.write_json(os.path.join(workdir, "results.json"), out)
  return out


def load_results(workdir: str) -> Dict:
  with open(os.path.join(workdir, "results.json")) as f:
    return json.load(f)
