"""The paper's synthetic-noise table rows (docs/design.md section 9), one pipeline config per row.

Each row names the recipe it runs (the paper-scale configs in configs/, built on
dbsn_jax.defaults.paper: reference D-BSN, 180k stage-1 steps, MWCNN 100k steps) and the
sets and noise setting dbsn-eval scores it on:

  dbsn-pipeline --config=configs/paper/table.py:gray_awgn25 --workdir=runs/paper/gray_awgn25
  dbsn-eval --models="stage 1=runs/paper/gray_awgn25/stage1,stage 2=runs/paper/gray_awgn25/stage2" \
      --sets=bsd68 --noise=25 --output_dir=runs/paper/gray_awgn25/eval
  python configs/paper/table.py rows                 # row names, sets, noise (for scripts)
  python configs/paper/table.py collect runs/paper   # one table beside the paper's numbers

tools/reproduce_paper.sh runs all rows in order (SMOKE=1: a handful of steps each).
"""
import importlib.util
import json
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))

# Row name -> (recipe file in configs/, its config string, eval sets, dbsn-eval noise).
ROWS = {
    "gray_awgn15": ("gray_awgn.py", "15", ("bsd68",), "15"),
    "gray_awgn25": ("gray_awgn.py", "25", ("bsd68",), "25"),
    "gray_awgn50": ("gray_awgn.py", "50", ("bsd68",), "50"),
    "gray_hg": ("gray_hg.py", "reference", ("bsd68",), "hg"),
    "color_awgn15": ("color_awgn.py", "15", ("cbsd68", "kodak24"), "15"),
    "color_awgn25": ("color_awgn.py", "25", ("cbsd68", "kodak24"), "25"),
    "color_awgn50": ("color_awgn.py", "50", ("cbsd68", "kodak24"), "50"),
    "color_hg": ("color_hg.py", "reference", ("cbsd68", "kodak24"), "hg"),
    "color_mg": ("color_mg.py", None, ("cbsd68", "kodak24"), "mg"),
}

# PSNR (dB) of the paper's Tables 1-3 as quoted in the project's SPEC.md: "D-BSN" is stage 1,
# "full" the distilled MWCNN. Keys are (set, dbsn-eval noise label).
PAPER = {
    ("bsd68", "awgn15"): {"BM3D": 31.07, "D-BSN": 31.63, "full": 31.82, "supervised": 31.86},
    ("bsd68", "awgn25"): {"BM3D": 28.57, "D-BSN": 29.12, "full": 29.38, "supervised": 29.41},
    ("bsd68", "awgn50"): {"BM3D": 25.62, "D-BSN": 26.19, "full": 26.51, "supervised": 26.53},
    ("bsd68", "hg40-10"): {"BM3D": 23.84, "D-BSN": 29.16, "full": 30.10, "supervised": 30.16},
    ("cbsd68", "awgn15"): {"BM3D": 33.52, "D-BSN": 33.56, "full": 34.02, "supervised": 34.08},
    ("cbsd68", "awgn25"): {"BM3D": 30.71, "D-BSN": 30.61, "full": 31.40, "supervised": 31.40},
    ("cbsd68", "awgn50"): {"BM3D": 27.38, "D-BSN": 27.66, "full": 28.25, "supervised": 28.26},
    ("cbsd68", "hg40-10"): {"BM3D": 23.21, "D-BSN": 30.56, "full": 31.72, "supervised": 32.10},
    ("cbsd68", "mg75"): {"BM3D": 24.07, "D-BSN": 26.48, "full": 26.81, "supervised": 26.89},
    ("kodak24", "awgn15"): {"BM3D": 34.28, "D-BSN": 33.74, "full": 34.82},
    ("kodak24", "awgn25"): {"BM3D": 31.68, "D-BSN": 31.64, "full": 32.35},
    ("kodak24", "awgn50"): {"BM3D": 28.46, "D-BSN": 28.69, "full": 29.36},
}


def _recipe(filename, arg):
  spec = importlib.util.spec_from_file_location(f"recipe_{filename[:-3]}",
                                                os.path.join(_HERE, "..", filename))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config() if arg is None else module.get_config(arg)


def get_config(row="gray_awgn25"):
  """The paper-scale pipeline config of one table row."""
  if row not in ROWS:
    raise ValueError(f"unknown paper row {row!r}; rows: {', '.join(ROWS)}")
  filename, arg, _, _ = ROWS[row]
  return _recipe(filename, arg)


def collect(runs_dir):
  """One Markdown table: every row's dbsn-eval means (RUNS/ROW/eval/results.json)
  beside the paper's numbers."""
  lines = ["| row | set | noise | images | noisy | ours stage 1 | ours stage 2 | ours BM3D "
           "| paper BM3D | paper D-BSN | paper full |", "|---" * 11 + "|"]
  for row in ROWS:
    path = os.path.join(runs_dir, row, "eval", "results.json")
    if not os.path.isfile(path):
      lines.append(f"| {row} | (not run: {path} missing) |" + " |" * 9)
      continue
    with open(path) as f:
      res = json.load(f)
    for key, summary in res["summary"].items():
      set_name, noise = key.rsplit(" ", 1)
      paper = PAPER.get((set_name, noise), {})
      get = lambda m: f"{summary[m]['psnr']:.2f}" if m in summary else "-"  # noqa: E731
      n = next(iter(summary.values()))["num_images"]
      lines.append(f"| {row} | {set_name} | {noise} | {n} | {get('noisy')} | {get('stage 1')} "
                   f"| {get('stage 2')} | {get('BM3D')} | "
                   + " | ".join(f"{paper[k]:.2f}" if k in paper else "-"
                                for k in ("BM3D", "D-BSN", "full")) + " |")
  return "\n".join(lines)


if __name__ == "__main__":
  if sys.argv[1:2] == ["rows"]:
    for name, (_, _, sets, noise) in ROWS.items():
      print(name, ",".join(sets), noise)
  elif sys.argv[1:2] == ["collect"] and len(sys.argv) == 3:
    print(collect(sys.argv[2]))
  else:
    sys.exit("usage: table.py rows | table.py collect RUNS_DIR")
