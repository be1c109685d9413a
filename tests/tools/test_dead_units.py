"""tools/dead_units.py counts the channels of exactly the ReLU layers it names."""
import os
import sys

import jax
import numpy as np
import pytest

from dbsn_jax import inference
from dbsn_jax.models.mwcnn import MWCNN

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
import dead_units  # noqa: E402


@pytest.mark.parametrize("convs,level", [(0, False), (1, False), (2, False), (1, True)])
def test_a_layer_pushed_below_zero_reads_dead_and_no_other(convs, level):
  """With zero kernels every conv outputs its bias: +1 everywhere except half of one
  ReLU layer's channels at -1. That layer reads 0.5, every other one 0, for each name
  the tool gives (the output convs are linear and must not be listed)."""
  model = MWCNN(channels=1, widths=(4, 8, 8), convs=convs, level_input=level)
  y = np.random.default_rng(0).random((2, 32, 32, 1), np.float32)
  params = model.init(jax.random.PRNGKey(0), y, None,
                      np.full((2, 32, 32, 1), 0.1, np.float32) if level else None)["params"]
  layers = dead_units.relu_layers(model)
  assert len(layers) == 3 * (convs + 1) + 3 * convs  # Encoder, decoder; outputs left out.
  for index, name in layers:
    p = {k: {"kernel": np.zeros_like(v["kernel"]), "bias": np.ones_like(v["bias"])}
         for k, v in params.items()}
    p[f"Conv_{index}"]["bias"][: p[f"Conv_{index}"]["bias"].size // 2] = -1
    d = inference.Denoiser(lambda *a: a, lambda *a: a, {"params": p}, 1, "stage2", 0,
                           model=model)
    fracs = dead_units.dead_fractions(d, y)
    assert list(fracs) == [n for _, n in layers]
    assert fracs[name] == 0.5
    assert all(f == 0 for n, f in fracs.items() if n != name), (name, fracs)
