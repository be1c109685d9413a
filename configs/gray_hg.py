"""Gray heteroscedastic Gaussian, alpha = 40, delta = 10, at paper scale (BSD68).

The paper's HG numbers came from the reference code's form, var = alpha^2 x^2 + delta^2;
pass ':paper' for var = alpha^2 x + delta^2.
"""
from dbsn_jax import defaults


def get_config(form="reference"):
  return defaults.paper(1, "hetero", "hetero", alpha=40.0, delta=10.0, hetero_form=form)
