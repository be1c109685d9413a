"""Color multivariate (channel-correlated) Gaussian, scale 75, at paper scale (CBSD68).

Full 3x3 covariances for both Sigma_mu and Sigma_n.
"""
from dbsn_jax import defaults


def get_config():
  return defaults.paper(3, "multivariate", "multivariate", mg_scale=75.0)
