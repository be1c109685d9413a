"""Color heteroscedastic Gaussian, alpha = 40, delta = 10, at paper scale (CBSD68)."""
from dbsn_jax import defaults


def get_config(form="reference"):
  return defaults.paper(3, "hetero", "hetero", alpha=40.0, delta=10.0, hetero_form=form)
