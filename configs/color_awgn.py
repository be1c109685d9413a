"""Color AWGN at paper scale (the paper's Table 2, CBSD68). Sigma from the config string:
  dbsn-pipeline --config=configs/color_awgn.py:15 --workdir=runs/color15
"""
from dbsn_jax import defaults


def get_config(sigma="25"):
  return defaults.paper(3, "awgn", "awgn", sigma=float(sigma))
