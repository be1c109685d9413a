"""dbsn-train: stage 1 (D-BSN + CNN_est) from a config file.

  dbsn-train --config=configs/demo.py --workdir=/tmp/demo [--config.FIELD=VALUE ...]
"""
from absl import app, flags, logging
from ml_collections import config_flags

from dbsn_jax.cli import common
from dbsn_jax.train import distributed

_CONFIG = config_flags.DEFINE_config_file("config", None, "Pipeline or stage-1 config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and logs.")
flags.mark_flags_as_required(["config", "workdir"])
distributed.define_flags()


def main(argv):
  del argv
  common.setup()
  common.guard(distributed.initialize_from_flags)
  from dbsn_jax.train import stage1
  config = _CONFIG.value.stage1 if "stage1" in _CONFIG.value else _CONFIG.value
  out = common.guard(lambda: stage1.train_and_evaluate(config, _WORKDIR.value))
  if out["eval"] and distributed.is_primary():
    logging.info("final evaluation: %s", out["eval"])
    print(common.markdown_table({"stage 1": out["eval"]}))


def run():
  app.run(main, flags_parser=common.parse_flags)


if __name__ == "__main__":
  run()
