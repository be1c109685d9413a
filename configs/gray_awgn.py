"""Gray AWGN at paper scale (the paper's Table 1, BSD68). Sigma from the config string:
  dbsn-pipeline --config=configs/gray_awgn.py:50 --workdir=runs/gray50
"""
from dbsn_jax import defaults


def get_config(sigma="25"):
  return defaults.paper(1, "awgn", "awgn", sigma=float(sigma))
