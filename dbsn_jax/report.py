"""Pictures of an evaluation: image grids with zoomed crops, noise-level-function plots.

Drawn with matplotlib's Agg backend (no display needed), written as PNG atomically,
or returned as `(H, W, 3)` uint8 arrays for TensorBoard.
"""
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from dbsn_jax import metrics

# One panel of a grid: (label, (H, W, C) image in [0, 1] (clipped for display), PSNR or None).
Panel = Tuple[str, np.ndarray, Optional[float]]


def _plt():
  import matplotlib
  matplotlib.use("Agg", force=False)
  import matplotlib.pyplot as plt
  return plt


def zoom_window(clean: np.ndarray, frac: float = 0.25) -> Tuple[int, int, int]:
  """(top, left, side) of the most textured of a 4x4 grid of square windows, so the
  zoom shows detail (where denoisers differ), not flat sky."""
  h, w = clean.shape[:2]
  side = max(8, int(min(h, w) * frac))
  best, best_var = (0, 0), -1.0
  for top in np.linspace(0, h - side, 4).astype(int):
    for left in np.linspace(0, w - side, 4).astype(int):
      v = float(np.var(clean[top:top + side, left:left + side]))
      if v > best_var:
        best, best_var = (int(top), int(left)), v
  return best[0], best[1], side


def _show(ax, img):
  img = np.clip(np.asarray(img, np.float32), 0.0, 1.0)
  if img.shape[-1] == 1:
    ax.imshow(img[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
  else:
    ax.imshow(img, interpolation="nearest")
  ax.set_xticks([])
  ax.set_yticks([])


def grid_figure(rows: Sequence[Tuple[str, List[Panel]]], zoom: bool = True):
  """A figure with one row per image (and a row of zoomed crops below it when `zoom`);
  columns are the panels (e.g. noisy, stage 1, stage 2, clean), titled with PSNR."""
  plt = _plt()
  from matplotlib.patches import Rectangle
  ncols = max(len(p) for _, p in rows)
  nrows = len(rows) * (2 if zoom else 1)
  ratios = []
  for _, panels in rows:
    h, w = panels[0][1].shape[:2]
    ratios += [h / w, 1.0] if zoom else [h / w]
  cell = 2.6
  fig, axes = plt.subplots(nrows, ncols, squeeze=False, gridspec_kw={"height_ratios": ratios},
                           figsize=(cell * ncols, cell * sum(ratios) + 0.35 * len(rows)))
  for i, (name, panels) in enumerate(rows):
    r = i * (2 if zoom else 1)
    clean = panels[-1][1]
    top, left, side = zoom_window(clean)
    for j in range(ncols):
      for rr in ((r, r + 1) if zoom else (r,)):
        axes[rr, j].axis("off")
    for j, (label, img, psnr) in enumerate(panels):
      ax = axes[r, j]
      ax.axis("on")
      _show(ax, img)
      title = label if psnr is None else f"{label}\n{psnr:.2f} dB"
      ax.set_title(title if j else f"{name}: {title}", fontsize=8)
      if zoom:
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), side, side, fill=False,
                               edgecolor="red", lw=1))
        axz = axes[r + 1, j]
        axz.axis("on")
        _show(axz, img[top:top + side, left:left + side])
  fig.tight_layout()
  return fig


def curves_figure(curves: Dict[str, Tuple[np.ndarray, np.ndarray]],
                  true: Optional[Tuple[np.ndarray, np.ndarray]], title: str = ""):
  """Noise std (0-255) against intensity (0-255), per channel: each model's estimate
  (solid) over the true noise-level function (dashed; black for gray, else per channel)."""
  plt = _plt()
  fig, ax = plt.subplots(figsize=(5.5, 4))
  colors = ("tab:red", "tab:green", "tab:blue")
  styles = ("-", "-.", ":")
  for k, (label, (x, std)) in enumerate(curves.items()):
    c = std.shape[-1]
    for ch in range(c):
      ax.plot(x, std[:, ch], styles[k % 3], color=colors[ch] if c == 3 else f"C{k}",
              label=f"{label}" + (f" ({'RGB'[ch]})" if c == 3 else ""))
  if true is not None:
    x, std = true
    c = std.shape[-1]
    for ch in range(c):
      ax.plot(x, std[:, ch], "--", color=colors[ch] if c == 3 else "black", lw=1,
              label="true" + (f" ({'RGB'[ch]})" if c == 3 else ""))
  ax.set_xlabel("intensity (0-255)")
  ax.set_ylabel("noise std (0-255)")
  ax.set_xlim(0, 255)
  ax.set_ylim(bottom=0)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  if title:
    ax.set_title(title, fontsize=9)
  fig.tight_layout()
  return fig


def save(fig, path: str, dpi: int = 110) -> str:
  """Write a figure as PNG atomically (temporary file, then rename); returns the path."""
  plt = _plt()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=dpi)
  plt.close(fig)
  os.replace(tmp, path)
  return path


def to_array(fig, dpi: int = 80) -> np.ndarray:
  """Render a figure to an `(H, W, 3)` uint8 array (for TensorBoard) and close it."""
  plt = _plt()
  fig.set_dpi(dpi)
  fig.canvas.draw()
  arr = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
  plt.close(fig)
  return arr


def training_grid(noisy: np.ndarray, outputs: Dict[str, np.ndarray],
                  clean: np.ndarray) -> np.ndarray:
  """The evaluation grid of one held-out image during training, as an array in [0, 1]
  `(H, W, 3)`: noisy, each output, clean, with PSNR and a zoomed crop."""
  panels: List[Panel] = [("noisy", noisy, metrics.image_scores(noisy, clean)["psnr"])]
  panels += [(k, v, metrics.image_scores(v, clean)["psnr"]) for k, v in outputs.items()]
  panels.append(("clean", clean, None))
  return to_array(grid_figure([("eval", panels)])).astype(np.float32) / 255.0
