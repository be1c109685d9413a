"""dbsn-jax: unpaired learning of deep image denoisers (D-BSN, ECCV 2020) in JAX/Flax."""
__version__ = "0.1.0"

from dbsn_jax.inference import Denoiser, denoise, load_denoiser  # noqa: E402

__all__ = ["Denoiser", "denoise", "load_denoiser"]
