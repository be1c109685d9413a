"""Throughput of the real train steps and denoisers on the devices at hand, one table row.

  python tools/scale_bench.py --section=train1 --dtype=bfloat16 [--size=reference]
  python tools/scale_bench.py --section=infer2 --infer_sizes=320x480,1024x1024
  python tools/scale_bench.py --table=rows.jsonl      # print collected rows as a table

Sections: `train1` (stage 1: noise draw, D-BSN + CNN_est, constrained likelihood, Adam),
`train2` (stage 2: learned-noise synthesis, stage-1 targets, MWCNN, Eq. 4), `infer1`
(D-BSN + Bayes denoiser), `infer2` (MWCNN) — with random parameters, data-parallel over
every device (`data.batch_size` per device, as in training). Each run appends one JSON
line per measurement to `--out`; run one section per process so the peak device memory
(`device.memory_stats()['peak_bytes_in_use']`, absent on CPU) is that section's own.
`--global_batch` fixes the global batch instead (per device = global / devices), which
compares 1 and 2 host devices on the same work (`XLA_FLAGS=
--xla_force_host_platform_device_count=2`).
"""
import importlib.util
import json
import os
import time

import jax
import numpy as np
from absl import app, flags

from dbsn_jax import defaults, inference
from dbsn_jax.data import mixed
from dbsn_jax.train import parallel, stage1, stage2

_SECTION = flags.DEFINE_enum("section", "train1", ["train1", "train2", "infer1", "infer2"],
                             "What to time.")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"],
                           "compute_dtype of the train step (inference is always fp32).")
_SIZE = flags.DEFINE_enum("size", "reference", ["reference", "cpu_budget", "tiny"],
                          "Model and patch size: the paper's, configs/cpu_budget.py's, tiny.")
_GLOBAL = flags.DEFINE_integer("global_batch", 0, "Fix the global batch (0: config's "
                               "per-device batch x devices).")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps (the median is reported).")
_SIZES = flags.DEFINE_string("infer_sizes", "320x480,1024x1024", "HxW for infer sections.")
_OUT = flags.DEFINE_string("out", "", "Append the JSON rows to this file.")
_TABLE = flags.DEFINE_string("table", "", "Print the rows of this JSONL file and exit.")


def _config_file(name: str):
  """configs/NAME.py as a module (the recipes are files, not a package)."""
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                      name + ".py")
  spec = importlib.util.spec_from_file_location(f"configs_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def configs(size: str):
  """(stage-1 config, stage-2 config) at `size`, gray."""
  c = defaults.workflow()
  if size == "cpu_budget":
    c = _config_file("cpu_budget").get_config("gray")
  elif size == "tiny":
    s1, s2 = c.stage1, c.stage2
    s1.model.features, s1.model.blocks, s1.data.patch_size, s1.data.batch_size = 8, (1, 1), 24, 4
    s2.denoiser.widths, s2.denoiser.convs = (8, 8, 8), 1
    s2.data.patch_size, s2.data.batch_size, s2.data.target_margin = 16, 8, 4
  for s in (c.stage1, c.stage2):
    s.compute_dtype = _DTYPE.value
    if _GLOBAL.value:
      if _GLOBAL.value % jax.device_count():
        raise ValueError(f"--global_batch={_GLOBAL.value} does not divide over "
                         f"{jax.device_count()} devices")
      s.data.batch_size = _GLOBAL.value // jax.device_count()
  return c.stage1, c.stage2


def peak_gb():
  stats = jax.local_devices()[0].memory_stats() or {}
  peak = stats.get("peak_bytes_in_use")
  return None if peak is None else peak / 2**30


def timed(fn, steps):
  """(compile + first call seconds, median seconds of `steps` further calls)."""
  t = time.perf_counter()
  jax.block_until_ready(fn())
  first = time.perf_counter() - t
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t)
  return first, float(np.median(times))


def train_rows(s1, s2):
  mesh = parallel.make_mesh()
  rng = np.random.default_rng(0)
  model = stage1.build_model(s1)
  if _SECTION.value == "train1":
    state = parallel.replicate(stage1.create_state(s1, model), mesh)
    rows, p = parallel.local_batch_size(s1.data.batch_size), s1.data.patch_size
    batch = parallel.shard_batch({"image": rng.random((rows, p, p, 1), np.float32),
                                  "image_id": np.zeros((rows,), np.int32)}, mesh)
    step, per_device = stage1.make_train_step(s1, model), s1.data.batch_size
  else:
    den = stage2.build_denoiser(s2)
    state = parallel.replicate(stage2.create_state(s2, den), mesh)
    n_clean, n_real = (parallel.local_batch_size(n) for n in mixed.split_batch(
        s2.data.batch_size, s2.data.real_fraction))
    p, q = s2.data.patch_size, s2.data.patch_size + 2 * s2.data.target_margin
    batch = parallel.shard_batch({"clean": rng.random((n_clean, p, p, 1), np.float32),
                                  "real": rng.random((n_real, q, q, 1), np.float32),
                                  "real_id": np.zeros((n_real,), np.int32)}, mesh)
    s1p = stage1.create_state(s1, model).params
    step = stage2.make_train_step(s2, den, s1, model, s1p, 1)
    per_device = s2.data.batch_size
  box = {"state": state}

  def run():
    box["state"], m = step(box["state"], batch)
    return m["loss"]
  first, sec = timed(run, _STEPS.value)
  glob = parallel.global_batch_size(per_device)
  return [{"what": f"{_SECTION.value} {p}x{p}", "batch": glob, "s": sec,
           "rate": glob / sec, "unit": "patches/s", "compile_s": first}]


def infer_rows(s1, s2):
  model = stage1.build_model(s1)
  if _SECTION.value == "infer1":
    d = inference.stage1_denoiser(s1, model, stage1.create_state(s1, model).params)
  else:
    den = stage2.build_denoiser(s2)
    st = stage2.create_state(s2, den)
    d = inference.stage2_denoiser(s2, den, {"params": st.params,
                                            "batch_stats": st.batch_stats})
  out = []
  for hw in _SIZES.value.split(","):
    h, w = (int(v) for v in hw.split("x"))
    image = np.random.default_rng(0).random((h, w, 1), np.float32)
    first, sec = timed(lambda: d(image), _STEPS.value)
    out.append({"what": f"{_SECTION.value} {h}x{w}", "batch": 1, "s": sec,
                "rate": 1 / sec, "unit": "images/s", "compile_s": first,
                "peak_gb": peak_gb()})
  return out


def print_table(path):
  with open(path) as f:
    rows = [json.loads(line) for line in f if line.strip()]
  print("| what | dtype | devices | global batch | s / step | rate | peak GB | first call s |")
  print("|---|---|---|---|---|---|---|---|")
  for r in rows:
    peak = "-" if r.get("peak_gb") is None else f"{r['peak_gb']:.2f}"
    print(f"| {r['what']} | {r['dtype']} | {r['devices']} {r['backend']} | {r['batch']} | "
          f"{r['s']:.4f} | {r['rate']:.1f} {r['unit']} | {peak} | {r['compile_s']:.1f} |")


def main(argv):
  del argv
  if _TABLE.value:
    print_table(_TABLE.value)
    return
  s1, s2 = configs(_SIZE.value)
  rows = train_rows(s1, s2) if _SECTION.value.startswith("train") else infer_rows(s1, s2)
  for r in rows:
    r.setdefault("peak_gb", peak_gb())
    r.update(dtype=_DTYPE.value if _SECTION.value.startswith("train") else "float32",
             devices=jax.device_count(), backend=jax.default_backend(), size=_SIZE.value)
    line = json.dumps(r)
    print(line)
    if _OUT.value:
      with open(_OUT.value, "a") as f:
        f.write(line + "\n")


if __name__ == "__main__":
  app.run(main)
