"""Dead ReLU channels of distilled MWCNNs: the share of each ReLU layer's channels that
are never positive on noisy test crops, so contribute nothing to the output.

A zero-initialised output conv and Adam's first, full-size steps can push whole layers
below zero for good (docs/evaluation.md, "Dead ReLUs"); `optim.warmup` prevents it.
For leaky units (`denoiser.activation`) the count is of channels never in the linear part.
  python tools/dead_units.py --models=gray-awgn25,new=runs/s2 --sigma=25
"""
import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from dbsn_jax import inference, predict
from dbsn_jax.data import sources
from dbsn_jax.models.mwcnn import MWCNN


def relu_layers(model: MWCNN):
  """(conv index, name) of the convs MWCNN follows by a ReLU, in creation order: per
  encoder level one conv plus `convs`, per decoder level `convs` plus a linear output."""
  levels, n = len(model.widths), model.convs
  names = [f"enc{l} conv{i}" for l in range(levels) for i in range(n + 1)]
  for l in reversed(range(levels)):
    names += [f"dec{l} conv{i}" for i in range(n)] + [None]
  return [(i, name) for i, name in enumerate(names) if name]


def dead_fractions(denoiser: inference.Denoiser, y: np.ndarray):
  """{layer name: share of its channels never > 0 on the batch y (N, H, W, C)}."""
  model = denoiser.model
  if not isinstance(model, MWCNN):
    raise ValueError(f"dead_units reads MWCNN models, got {type(model).__name__}")
  y = jnp.asarray(y)
  # A model told the noise level gets the estimate on each crop, as the Denoiser does.
  level = predict.level_map(predict.noise_std(y), y) if model.level_input else None
  _, inter = model.apply(denoiser.params, y, None, level, capture_intermediates=True,
                         mutable=["intermediates"])
  out = {}
  for i, name in relu_layers(model):
    a = np.asarray(inter["intermediates"][f"Conv_{i}"]["__call__"][0])
    out[name] = float(np.mean(np.all(a <= 0, axis=(0, 1, 2))))
  return out


def define_flags():
  """The binary's flags; defined only when run as a script, so that tests can import this
  module beside other tools that define flags of the same names (--crop, --images)."""
  flags.DEFINE_list("models", ["gray-awgn25"],
                    "[LABEL=]stage-2 workdir, weights dir or bundled name.")
  flags.DEFINE_string("images", "shared:CBSD68", "Clean images to add noise to.")
  flags.DEFINE_integer("num_images", 4, "How many of them (the first N).")
  flags.DEFINE_integer("crop", 256, "Top-left crop side (a multiple of 2^levels).")
  flags.DEFINE_float("sigma", 25.0, "AWGN std of the input, 0-255 scale.")


def main(argv):
  del argv
  f = flags.FLAGS
  labels, rows = [], {}
  for spec in f.models:
    label, _, path = spec.rpartition("=")
    d = inference.load_denoiser(path)
    clean = sources.load(f.images, d.channels, 0, f.num_images)
    c = f.crop
    x = np.stack([im[:c, :c] for im in clean.images if min(im.shape[:2]) >= c])
    y = x + f.sigma / 255 * np.asarray(jax.random.normal(jax.random.PRNGKey(0), x.shape))
    labels.append(label or path)
    for name, frac in dead_fractions(d, y.astype(np.float32)).items():
      rows.setdefault(name, {})[len(labels) - 1] = frac
  print(f"Dead ReLU channels (never > 0 on {len(y)} noisy {c}x{c} crops, sigma "
        f"{f.sigma:g})\n")
  print("| layer | " + " | ".join(labels) + " |")
  print("|---|" + "---|" * len(labels))
  for name, fracs in rows.items():  # "-": a layer the model lacks (e.g. fewer levels).
    print(f"| {name} | " + " | ".join(f"{fracs[i]:.2f}" if i in fracs else "-"
                                      for i in range(len(labels))) + " |")


if __name__ == "__main__":
  define_flags()
  app.run(main)
