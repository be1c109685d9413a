"""dbsn-pipeline: stage 1, stage 2 and evaluation in one resumable run.

  dbsn-pipeline --config=configs/demo.py --workdir=/tmp/dbsn_demo
Writes WORKDIR/stage1, WORKDIR/stage2 and WORKDIR/results.json; prints the table.
"""
import sys

from absl import app, flags
from ml_collections import config_flags

from dbsn_jax.cli import common
from dbsn_jax.train import distributed

_CONFIG = config_flags.DEFINE_config_file("config", None, "Pipeline config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for both stages and results.")
flags.mark_flags_as_required(["config", "workdir"])
distributed.define_flags()


def main(argv):
  del argv
  common.setup()
  common.guard(distributed.initialize_from_flags)
  from dbsn_jax import workflow
  if "stage1" not in _CONFIG.value or "stage2" not in _CONFIG.value:
    common.fail("dbsn-pipeline needs a config with stage1 and stage2 sections")
  out = common.guard(lambda: workflow.run(_CONFIG.value, _WORKDIR.value))
  if "interrupted" in out:
    print(f"interrupted during {out['interrupted']}; rerun the same command to resume",
          file=sys.stderr)
    sys.exit(1)
  if not distributed.is_primary():
    return
  if "results" not in out:  # No ground truth: the photos were denoised, nothing to score.
    levels = out.get("noise_levels") or []
    if levels:
      print("\nlearned noise std per photo (0-255" + (", R G B" if len(levels[0]["std"]) == 3
                                                     else "") + "):")
      print("| photo | std |\n|---|---|")
      for row in levels[:20]:
        print(f"| {row['photo']} | {' '.join(f'{v:.2f}' for v in row['std'])} |")
      if len(levels) > 20:
        print(f"| ... {len(levels) - 20} more in results.json | |")
      print(f"(noise std against intensity: {out['denoised']}/noise_levels.png)")
    print(f"\ndenoised photos written to {out['denoised']}")
    print(f"written to {_WORKDIR.value}/results.json")
    return
  print(f"\n{out['eval_set']}: {out['num_images']} images, noise {out['noise']['kind']}")
  print(common.markdown_table(out["results"]))
  if out.get("noise_std") and out["noise_std"]["relative_error"] is not None:
    ns = out["noise_std"]
    print(f"\nlearned noise std {ns['learned']:.2f} (true {ns['true']:.2f}, "
          f"{100 * ns['relative_error']:+.1f} %), 0-255 scale")
  print(f"\nwritten to {_WORKDIR.value}/results.json")


def run():
  app.run(main, flags_parser=common.parse_flags)


if __name__ == "__main__":
  run()
