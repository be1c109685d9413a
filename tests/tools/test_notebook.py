"""tools/colab_tpu.ipynb runs top to bottom on CPU with its TINY parameter."""
import os
import time

import pytest

from tests.conftest import REPO

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def test_colab_notebook_runs_tiny_on_cpu(tmp_path, monkeypatch):
  nb = nbformat.read(os.path.join(REPO, "tools", "colab_tpu.ipynb"), as_version=4)
  tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
  assert len(tagged) == 1, "the notebook needs exactly one cell tagged 'parameters'"
  # Injected after the parameter cell, as papermill does.
  nb.cells.insert(tagged[0] + 1, nbformat.v4.new_code_cell(
      f"INSTALL = False\nTINY = True\nREPO_DIR = {REPO!r}\n"
      f"WORKDIR = {str(tmp_path / 'run')!r}"))
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  t0 = time.time()
  nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                          resources={"metadata": {"path": str(tmp_path)}}).execute()
  took = time.time() - t0
  text = "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/markdown", ""))
                   for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
  assert "install skipped" in text
  assert "stage 2" in text and "stage 1 (Bayes)" in text
  pngs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
          if "image/png" in o.get("data", {})]
  assert pngs, "no image was shown"
  assert os.path.exists(tmp_path / "run" / "export" / "weights.npz")
  print(f"notebook: {took:.1f} s")
