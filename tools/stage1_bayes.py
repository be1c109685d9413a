"""Stage-1 Bayes options side by side on a test set, from one trained stage-1 workdir.

  python tools/stage1_bayes.py --workdir=S1 --set=cbsd68 --noise=25 [--stop=0]

One row per (bayes.noise_level, bayes.calibrate_prior): the Sigma_n the Bayes step uses
(CNN_est's, the classical estimate of each image, or CNN_est's re-levelled with Sigma_mu's
scale by the likelihood of each image's residual: 'fitted', which ignores
calibrate_prior) and whether Sigma_mu is rescaled per image to fit the residual. Same
protocol as dbsn-eval (seeded noise, full images, size buckets); the training is not
touched. Measurements: docs/noise_level.md.
"""
import time

from absl import app, flags

from dbsn_jax import evaluate, inference
from dbsn_jax.train import stage1

_WORKDIR = flags.DEFINE_string("workdir", None, "A stage-1 workdir.")
_SET = flags.DEFINE_string("set", "bsd68", "Test set name or image source spec.")
_NOISE = flags.DEFINE_string("noise", "25", "Comma-separated dbsn-eval noise settings.")
_STOP = flags.DEFINE_integer("stop", 0, "Images per set (0: all).")
_VARIANTS = flags.DEFINE_string(
    "variants", "learned:0,learned:1,estimated:0,estimated:1,fitted:0",
    "Comma-separated noise_level:calibrate_prior pairs.")
flags.mark_flags_as_required(["workdir"])


def rows(workdir, set_name, settings, variants, stop=None):
  """[{noise, noise_level, calibrate_prior, psnr, ssim, seconds}] for each case and variant."""
  config, model, params = stage1.load(workdir)
  out = []
  for setting in settings:
    noisy, clean, _, _ = evaluate.load_case(set_name, setting, config.channels, stop=stop)
    for level, calibrate in variants:
      variant = model.clone(bayes_noise=level, calibrate_prior=calibrate)
      d = inference.stage1_denoiser(config, variant, params)
      t0 = time.time()
      s = evaluate.score(d, noisy, clean)
      out.append({"noise": setting, "noise_level": level, "calibrate_prior": calibrate,
                  "psnr": s["psnr"], "ssim": s["ssim"], "psnr_noisy": s["psnr_noisy"],
                  "num_images": s["num_images"], "seconds": time.time() - t0})
  return out


def main(argv):
  del argv
  variants = []
  for v in _VARIANTS.value.split(","):
    level, _, cal = v.partition(":")
    variants.append((level.strip(), cal.strip() in ("1", "true", "True")))
  table = rows(_WORKDIR.value, _SET.value, _NOISE.value.split(","), variants,
               _STOP.value or None)
  print(f"| {_SET.value} noise | Sigma_n | Sigma_mu calibrated | images | noisy | "
        "Bayes PSNR / SSIM | s |")
  print("|---|---|---|---|---|---|---|")
  for r in table:
    print(f"| {r['noise']} | {r['noise_level']} | {'yes' if r['calibrate_prior'] else 'no'} | "
          f"{r['num_images']} | {r['psnr_noisy']:.2f} | {r['psnr']:.2f} / {r['ssim']:.4f} | "
          f"{r['seconds']:.0f} |")


if __name__ == "__main__":
  app.run(main)
