"""dbsn-jax: unpaired learning of deep image denoisers (D-BSN, ECCV 2020) in JAX/Flax."""
__version__ = "0.1.0"
