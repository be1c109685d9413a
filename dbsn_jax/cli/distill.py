"""dbsn-distill: stage 2, distilling a stage-1 workdir into MWCNN or DnCNN.

  dbsn-distill --config=configs/gray_awgn.py --stage1_workdir=runs/s1 --workdir=runs/s2
"""
from absl import app, flags, logging
from ml_collections import config_flags

from dbsn_jax.cli import common
from dbsn_jax.train import distributed

_CONFIG = config_flags.DEFINE_config_file("config", None, "Pipeline or stage-2 config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and logs.")
_STAGE1 = flags.DEFINE_string("stage1_workdir", None,
                              "Stage-1 workdir (overrides config stage1_workdir).")
flags.mark_flags_as_required(["config", "workdir"])
distributed.define_flags()


def main(argv):
  del argv
  common.setup()
  common.guard(distributed.initialize_from_flags)
  from dbsn_jax.train import stage2
  config = _CONFIG.value.stage2 if "stage2" in _CONFIG.value else _CONFIG.value
  if _STAGE1.value:
    with config.unlocked():
      config.stage1_workdir = _STAGE1.value
  out = common.guard(lambda: stage2.train_and_evaluate(config, _WORKDIR.value))
  if out["eval"] and distributed.is_primary():
    logging.info("final evaluation: %s", out["eval"])
    print(common.markdown_table({"stage 2": out["eval"]}))


def run():
  app.run(main, flags_parser=common.parse_flags)


if __name__ == "__main__":
  run()
