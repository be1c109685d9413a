"""Bundle a trained workdir as a named model shipped in the package.

  python tools/export_pretrained.py --workdir=runs/cpu/stage2 --name=gray-awgn25 \
      --source=shared:BSD68 --sigma=25 --command="dbsn-pipeline ..."

Writes dbsn_jax/pretrained/NAME/{weights.npz, config.json, card.json}: plain arrays
(no pickle), the training config, and a model card with the training command and the
PSNR measured here with the paper's protocol.
"""
import json
import os

from absl import app, flags

from dbsn_jax import evaluate, inference

_WORKDIR = flags.DEFINE_string("workdir", None, "Stage-1 or stage-2 workdir.")
_NAME = flags.DEFINE_string("name", None, "Model name, e.g. gray-awgn25.")
_SOURCE = flags.DEFINE_string("source", "shared:BSD68", "Benchmark set for the card.")
_SIGMA = flags.DEFINE_string("sigma", "25", "Comma-separated AWGN sigmas for the card.")
_COMMAND = flags.DEFINE_string("command", "", "The training command, for the card.")
_NOTE = flags.DEFINE_string("note", "", "Free text for the card (e.g. the CPU budget).")
_ENSEMBLE = flags.DEFINE_string(
    "ensemble_results", None,
    "results.json of a `dbsn-eval --ensemble` run of this workdir: its per-set scores with and "
    "without the x8 self-ensemble go in the card.")
_ENSEMBLE_COMMAND = flags.DEFINE_string("ensemble_command", "", "That dbsn-eval command.")
flags.mark_flags_as_required(["workdir", "name"])


def ensemble_section(path, command):
  """The card's self-ensemble table from a dbsn-eval results.json with one model."""
  with open(path) as f:
    r = json.load(f)
  if len(r.get("models", {})) != 1:
    raise app.UsageError(f"--ensemble_results={path}: expected a dbsn-eval run of one model")
  (label,) = r["models"]
  rows = {}
  for case, methods in r["summary"].items():
    if f"{label} x8" not in methods:
      raise app.UsageError(f"--ensemble_results={path}: {case} has no '{label} x8' column "
                           "(run dbsn-eval with --ensemble)")
    one, x8 = methods[label], methods[f"{label} x8"]
    secs = r["seconds_per_image"][case]
    rows[case] = {"psnr": round(one["psnr"], 4), "ssim": round(one["ssim"], 4),
                  "psnr_x8": round(x8["psnr"], 4), "ssim_x8": round(x8["ssim"], 4),
                  "num_images": one["num_images"],
                  "seconds_per_image": round(secs[label], 3),
                  "seconds_per_image_x8": round(secs[f"{label} x8"], 3)}
  return {"command": command, "protocol": r["protocol"],
          "note": "x8: the mean over the 8 flips and rotations (denoise(..., ensemble=True)); "
                  "both columns from the same run on the 2-core CPU machine",
          "results": rows}


def main(argv):
  del argv
  d = inference.load_denoiser(_WORKDIR.value)
  out = os.path.join(inference.PRETRAINED_DIR, _NAME.value)
  inference.save_weights(d, out)
  results = {f"{_SOURCE.value} sigma={sigma}": r for sigma, r in
             evaluate.awgn_scores(d, _SOURCE.value, _SIGMA.value.split(",")).items()}
  card = {"name": _NAME.value, "kind": d.kind, "channels": d.channels,
          "training_command": _COMMAND.value, "note": _NOTE.value, "results": results}
  if _ENSEMBLE.value:
    card["self_ensemble"] = ensemble_section(_ENSEMBLE.value, _ENSEMBLE_COMMAND.value)
  with open(os.path.join(out, "card.json"), "w") as f:
    json.dump(card, f, indent=2)
  size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
  print(json.dumps(card, indent=2))
  print(f"wrote {out} ({size / 1e6:.2f} MB)")


if __name__ == "__main__":
  app.run(main)
