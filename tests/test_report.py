"""Pictures: grids with zoomed crops, noise-level plots, TensorBoard arrays."""
import numpy as np
from PIL import Image

from dbsn_jax import report


def test_zoom_window_finds_the_textured_part():
  img = np.full((64, 96, 1), 0.5, np.float32)
  img[40:64, 70:96] = np.random.default_rng(0).random((24, 26, 1))
  top, left, side = report.zoom_window(img)
  assert side == 16 and top >= 40 - side // 2 and left >= 70 - side // 2


def test_grid_png_has_a_panel_per_method_and_a_zoom_row(tmp_path):
  rng = np.random.default_rng(0)
  rows = [(f"im{i}", [("noisy", rng.random((40, 60, 3)), 20.0),
                      ("stage 1", rng.random((40, 60, 3)), 27.5),
                      ("clean", rng.random((40, 60, 3)), None)]) for i in range(2)]
  fig = report.grid_figure(rows)
  assert len([a for a in fig.axes if a.axison]) == 2 * 3 * 2  # Full + zoom per panel.
  assert "27.50 dB" in " ".join(a.get_title() for a in fig.axes)
  path = report.save(fig, str(tmp_path / "grid.png"))
  w, h = Image.open(path).size
  assert w > 3 * 100 and h > 2 * 100
  assert not (tmp_path / "grid.png.tmp.png").exists()


def test_noise_level_plot_and_training_grid(tmp_path):
  x = np.linspace(0, 255, 8)
  fig = report.curves_figure({"stage 1": (x, np.stack([x * 0 + 25] * 3, -1))},
                             (x, np.stack([x * 0 + 24] * 3, -1)), "t")
  assert len(fig.axes[0].lines) == 6
  report.save(fig, str(tmp_path / "nlf.png"))
  rng = np.random.default_rng(1)
  arr = report.training_grid(rng.random((32, 48, 1)), {"bayes": rng.random((32, 48, 1))},
                             rng.random((32, 48, 1)))
  assert arr.ndim == 3 and arr.shape[-1] == 3 and arr.dtype == np.float32
  assert 0 <= arr.min() and arr.max() <= 1 and arr.std() > 0
