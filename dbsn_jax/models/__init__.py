"""Linen modules: D-BSN, the noise model CNN_est, and the stage-2 denoisers."""
from dbsn_jax.models.dbsn import DBSN, MDC
from dbsn_jax.models.dncnn import DnCNN
from dbsn_jax.models.mwcnn import MWCNN
from dbsn_jax.models.noise_model import NoiseEstimator

__all__ = ["DBSN", "MDC", "DnCNN", "MWCNN", "NoiseEstimator"]
