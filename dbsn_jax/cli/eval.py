"""dbsn-eval: score models on benchmark sets with the paper's protocol (docs/design.md section 9).

  dbsn-eval --models="stage 1=runs/s1,stage 2=runs/s2" --sets=bsd68,set12 --noise=25 \
      --output_dir=runs/eval
  dbsn-eval --models=color-awgn --sets=cbsd68,kodak24 --noise=15,25,50 --output_dir=out

Models are workdirs (stage 1 or 2), weights directories or bundled names, optionally
labelled `LABEL=PATH`. Sets are benchmark names (bsd68, cbsd68, kodak24, set12,
mcmaster, cc15; read through their TFDS builders), pairs:DIR (real noisy photos in
DIR/noisy beside their references in DIR/clean, e.g. tools/camera_sim.py's output) or
any image source spec. Noise: SIGMA (AWGN), hg, mg, or real (CC15, pairs:DIR).
Per-image seeded noise, unclipped noisy input, PSNR of the clipped output over all
channels, no border crop, mean of per-image scores; SSIM with an 11x11 Gaussian window,
sigma 1.5. The noisy input is the baseline column; BM3D / CBM3D join when the `bm3d`
package is installed (pip install "dbsn-jax[bm3d]"): with the true level under synthetic
noise, under real noise with the level estimated from each photo (--bm3d_sigma also
true: each pair's own std(noisy - clean); psd: its noise power spectrum).

Writes OUTPUT_DIR/results.md (the table also printed), results.csv (one row per image
and method), results.json (settings, means, per-image rows), grid_SET_NOISE.png
(images with zoomed crops, PSNR per panel) and, for stage-1 models on synthetic noise,
nlf_SET_NOISE.png (estimated vs true noise std against intensity).
"""
import sys

from absl import app, flags

from dbsn_jax.cli import common

_MODELS = flags.DEFINE_list("models", None, "[LABEL=]workdir, weights dir or bundled name.")
_SETS = flags.DEFINE_list("sets", ["bsd68"],
                          "Benchmark names, pairs:DIR (real pairs) or image source specs.")
_NOISE = flags.DEFINE_list("noise", ["25"], "Noise settings: SIGMA, hg, hg_paper, mg, real "
                            "(CC15 or pairs:DIR sets).")
_OUT = flags.DEFINE_string("output_dir", None, "Where the table, CSV, JSON and PNGs go.")
_SEED = flags.DEFINE_integer("seed", 1234, "Noise seed (image i: fold_in(seed, i)).")
_STOP = flags.DEFINE_integer("stop", 0, "Use the first N images of each set (0: all).")
_CROP = flags.DEFINE_integer("crop", 0, "Centre crop side (0: full images, the protocol).")
_BM3D = flags.DEFINE_enum("bm3d", "auto", ["auto", "on", "off"],
                          "BM3D/CBM3D column: auto (when installed), on (required), off.")
_BM3D_SIGMA = flags.DEFINE_list(
    "bm3d_sigma", ["estimated"],
    "Real noise: the level(s) BM3D gets per photo, one column each: estimated (from the "
    "noisy photo alone, what a user without ground truth runs), true (each pair's "
    "per-channel std(noisy - clean), an oracle) or psd (each pair's noise power spectrum: "
    "BM3D for correlated noise, an oracle).")
_ENSEMBLE = flags.DEFINE_bool(
    "ensemble", False, "Also score each model's self-ensemble (mean over the 8 flips and "
    "rotations) as method 'LABEL x8'.")
_GRID = flags.DEFINE_integer("grid_images", 3, "Images per grid PNG (0: no pictures).")
flags.mark_flags_as_required(["models", "output_dir"])


def markdown(results, methods) -> str:
  """One row per (set, noise), one column per method: 'PSNR / SSIM'."""
  lines = ["| set | noise | images | " + " | ".join(methods) + " |",
           "|---|---|---" + "|---" * len(methods) + "|"]
  for (set_name, noise), summary in results.items():
    n = next(iter(summary.values()))["num_images"]
    cells = [f"{summary[m]['psnr']:.2f} / {summary[m]['ssim']:.4f}" if m in summary else "-"
             for m in methods]
    lines.append(f"| {set_name} | {noise} | {n} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    common.fail(f"unexpected arguments: {' '.join(argv[1:])}")
  common.setup()
  common.guard(_main)


def _main():
  import csv
  import os
  from absl import logging
  from tqdm import tqdm
  from dbsn_jax import evaluate, report
  from dbsn_jax.train import checkpoints
  out_dir = _OUT.value
  use_bm3d = _BM3D.value == "on" or (_BM3D.value == "auto" and evaluate.bm3d_available())
  if _BM3D.value == "on" and not evaluate.bm3d_available():
    raise ValueError("--bm3d=on needs the bm3d package: pip install \"dbsn-jax[bm3d]\"")
  settings = [evaluate.noise_setting(n) for n in _NOISE.value]  # Fail fast on bad names.
  try:  # Likewise.
    real_bm3d = evaluate.bm3d_methods(True, _BM3D_SIGMA.value)
  except ValueError as e:
    raise ValueError(f"--bm3d_sigma: {e}") from None
  models = evaluate.parse_models(_MODELS.value)
  methods = ["noisy"]
  for label, (_, d) in models.items():
    methods += [label] + ([evaluate.ensemble_label(label)]
                          if _ENSEMBLE.value and d.dihedral_ok else [])
  methods += [evaluate.GUIDED_NOISY] if "real" in _NOISE.value else []
  if use_bm3d:  # Real noise: BM3D with the estimated and/or the pair's own level.
    methods += ["BM3D"] if any(n != "real" for n in _NOISE.value) else []
    methods += real_bm3d if "real" in _NOISE.value else []
  os.makedirs(out_dir, exist_ok=True)
  results, all_rows, timing, pictures = {}, [], {}, []
  for set_name in _SETS.value:
    for (label, _), raw in zip(settings, _NOISE.value):
      bar = tqdm(desc=f"{set_name} {label}", unit="image", file=sys.stderr, leave=False)

      def progress(i, n, bar=bar):
        bar.total = n
        bar.update(i - bar.n)

      case = evaluate.run_case(models, set_name, raw, _SEED.value, _STOP.value or None,
                               _CROP.value, use_bm3d, _GRID.value, progress,
                               _ENSEMBLE.value, _BM3D_SIGMA.value)
      bar.close()
      results[(set_name, label)] = evaluate.summarize(case["rows"])
      timing[f"{set_name} {label}"] = {m: s / case["num_images"]
                                       for m, s in case["seconds"].items()}
      all_rows += [{"set": set_name, "noise": label, **r} for r in case["rows"]]
      tag = f"{_file_tag(set_name)}_{label.replace('.', 'p')}"
      if case["keep"]:
        grid = [(name, [(m, outs[m], evaluate.image_scores(outs[m], outs["clean"])["psnr"])
                        for m in methods if m in outs] + [("clean", outs["clean"], None)])
                for name, outs in case["keep"]]
        pictures.append(report.save(report.grid_figure(grid),
                                    os.path.join(out_dir, f"grid_{tag}.png")))
      if case["nlf"]:
        pictures.append(report.save(report.curves_figure(
            case["nlf"], case["nlf_true"], f"{set_name}, {label}: estimated vs true noise level"),
            os.path.join(out_dir, f"nlf_{tag}.png")))
      logging.info("%s %s: %s", set_name, label, "  ".join(
          f"{m} {v['psnr']:.2f}" for m, v in results[(set_name, label)].items()))
  table = markdown(results, methods)
  with open(os.path.join(out_dir, "results.csv.tmp"), "w", newline="") as f:
    w = csv.DictWriter(f, ["set", "noise", "image", "method", "psnr", "ssim"])
    w.writeheader()
    w.writerows(all_rows)
  os.replace(os.path.join(out_dir, "results.csv.tmp"), os.path.join(out_dir, "results.csv"))
  checkpoints.write_json(os.path.join(out_dir, "results.json"), {
      "protocol": "docs/design.md section 9: per-image seeded noise, unclipped noisy input, "
                  "PSNR on "
                  "the clipped output over all channels, no border crop, mean of per-image "
                  "scores; SSIM 11x11 Gaussian window, sigma 1.5",
      "seed": _SEED.value, "crop": _CROP.value, "stop": _STOP.value,
      "models": {k: {"path": p, "kind": d.kind} for k, (p, d) in models.items()},
      "methods": methods,
      "summary": {f"{s} {n}": v for (s, n), v in results.items()},
      "seconds_per_image": timing, "pictures": pictures, "images": all_rows})
  with open(os.path.join(out_dir, "results.md"), "w") as f:
    f.write(table + "\n")
  print(table)
  print(f"\nwritten to {out_dir}: results.md, results.csv, results.json, "
        f"{len(pictures)} PNG", file=sys.stderr)


def _file_tag(set_name: str) -> str:
  return "".join(ch if ch.isalnum() else "_" for ch in set_name.lower()).strip("_")


def run():
  app.run(main, flags_parser=common.parse_flags)


if __name__ == "__main__":
  run()
