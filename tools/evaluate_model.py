"""PSNR / SSIM of a trained model on a benchmark set, paper protocol.

  python tools/evaluate_model.py --model=gray-awgn25 --source=shared:BSD68 --sigma=25
  python tools/evaluate_model.py --model=runs/s2 --source=shared:CBSD68 --sigma=15,25,50
"""
import json

from absl import app, flags

from dbsn_jax import evaluate
from dbsn_jax.inference import load_denoiser

_MODEL = flags.DEFINE_string("model", "gray-awgn25", "Model name, weights dir or workdir.")
_SOURCE = flags.DEFINE_string("source", "shared:BSD68", "Image source spec.")
_SIGMA = flags.DEFINE_string("sigma", "25", "Comma-separated AWGN sigmas (0-255).")
_STOP = flags.DEFINE_integer("stop", 0, "Use the first N images (0: all).")
_JSON = flags.DEFINE_string("json", "", "Write results here.")


def main(argv):
  del argv
  d = load_denoiser(_MODEL.value)
  rows = evaluate.awgn_scores(d, _SOURCE.value, _SIGMA.value.split(","), _STOP.value or None)
  print(f"| {_MODEL.value} on {_SOURCE.value} | images | noisy PSNR | PSNR | SSIM |")
  print("|---|---|---|---|---|")
  for s, r in rows.items():
    print(f"| sigma {s} | {r['num_images']} | {r['psnr_noisy']:.2f} | {r['psnr']:.2f} | "
          f"{r['ssim']:.4f} |")
  if _JSON.value:
    with open(_JSON.value, "w") as f:
      json.dump(rows, f, indent=2)


if __name__ == "__main__":
  app.run(main)
