"""Gray AWGN sigma = 25 sized for a 2-core CPU: about 30 min per stage.

Noisy set Train400[:200], clean set Train400[200:], test BSD68 (4 centre crops during
training, all 68 full images with --config.stage1.eval.stop=0 --config.stage1.eval.crop=0).
  dbsn-pipeline --config=configs/cpu_budget.py --workdir=runs/cpu
Pass ':hetero' or ':color' for other CPU-budget runs, or ':color_range' for the blind
color model: every noisy CBSD432 image has its own AWGN sigma in [5, 50], stage 1 learns
one CNN_est per image, and stage 2 draws among them, so the distilled MWCNN covers the
range (the bundled 'color-awgn' model).
"""
from dbsn_jax import defaults


def get_config(kind="gray"):
  if kind == "gray":
    config = defaults.paper(1, "awgn", "awgn", sigma=25.0)
  elif kind == "hetero":
    config = defaults.paper(1, "hetero", "hetero", alpha=40.0, delta=10.0,
                            hetero_form="reference")
  elif kind == "color":
    config = defaults.paper(3, "awgn", "awgn", sigma=25.0)
  elif kind == "color_range":
    config = defaults.paper(3, "awgn_per_image", "awgn", sigma_range=(5.0, 50.0))
    config.stage1.noise_model.per_image = True
  else:
    raise ValueError(f"cpu_budget config string must be gray, hetero, color or color_range, got {kind!r}")
  return defaults.cpu_budget(config)
