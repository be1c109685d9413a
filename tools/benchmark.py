"""Speed of every network, plain against fast convolutions, in one table.

  python tools/benchmark.py [--models=dbsn_reference,dbsn_cpu_budget,...]
      [--impls=plain,fast,fast/mb1] [--reps=3] [--json=bench.json] [--smoke]
  python tools/benchmark.py --memory --nospeed [--memory_batch=32]

For each model and convolution implementation (`dbsn_jax.models.fast_conv.IMPLS`;
`IMPL/mbN` also splits D-BSN's train step into passes of N patches, `train.microbatch`):
train-step patches/s and forward megapixels/s, achieved GFLOP/s from an analytic FLOP
count (multiply-adds of every conv and matmul in the forward jaxpr, x 2; a train step
counts 3 forward passes: forward, input gradient, weight gradient), that rate as a
fraction of the dense fp32 matmul rate measured in the same run (best of several
2048^2 products, at the start and the end), peak memory from XLA's compiled memory
analysis, and compile time. Implementations are timed in turns (round robin, best of
`--reps`), so a busy machine slows all of them alike and their ratios stay fair.
`--memory` also compiles (without running) the accelerator configs' stage-1 train step
at `--memory_batch` patches per device and reports whether it fits a 16 GB device;
`--nospeed` skips the speed table.
"""
import json
import os
import platform
import resource
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags

from dbsn_jax import defaults, xla_cpu
from dbsn_jax.models import DnCNN, MWCNN, NoiseEstimator
from dbsn_jax.train import stage1

_MODELS = flags.DEFINE_string(
    "models", "dbsn_reference,dbsn_cpu_budget,noise_model,mwcnn_cpu_budget,mwcnn_reference,"
    "dncnn", "Comma-separated models (see SPECS).")
_IMPLS = flags.DEFINE_string(
    "impls", "plain,fast,fast/mb1",
    "Convolution implementations (plain, s2b, fast); IMPL/mbN: D-BSN micro-batches of N.")
_REPS = flags.DEFINE_integer("reps", 3, "Timed repetitions per measurement (best is kept).")
_FWD = flags.DEFINE_string("forward", "320x480", "Forward-pass image HxW.")
_JSON = flags.DEFINE_string("json", "", "Write the results here.")
_SMOKE = flags.DEFINE_bool("smoke", False, "Tiny models, one repetition (CI).")
_SPEED = flags.DEFINE_bool("speed", True, "The speed table.")
_MEMORY = flags.DEFINE_bool("memory", False, "The accelerator memory check.")
_MEM_BATCH = flags.DEFINE_integer("memory_batch", 32, "Patches per device for --memory.")
_DEVICE_GB = flags.DEFINE_float("device_gb", 16.0, "Device memory for --memory.")
_XLA_KERNELS = flags.DEFINE_bool(
    "xla_kernels", True, "XLA's own CPU conv kernels, as the binaries set them "
    "(dbsn_jax.xla_cpu); --noxla_kernels leaves XLA_FLAGS as it is (jaxlib's default: "
    "YNNPACK fusions).")
_HUGEPAGES = flags.DEFINE_bool(
    "hugepages", True, "Re-run under GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (docs/speed.md).")

HUGETLB = "glibc.malloc.hugetlb=1"

# name -> (kind, architecture, train patch side, train batch).
SPECS = {
    "dbsn_reference": ("dbsn", dict(features=96, blocks=(8, 8)), 96, 8),
    "dbsn_cpu_budget": ("dbsn", dict(features=48, blocks=(2, 2)), 64, 8),
    "noise_model": ("noise", dict(features=16, hidden_layers=3), 96, 8),
    "mwcnn_cpu_budget": ("mwcnn", dict(widths=(32, 64, 64), convs=1), 64, 16),
    # The blind-range colour recipe's 4 levels (cpu_budget.py:color_range).
    "mwcnn_cpu_budget_l4": ("mwcnn", dict(widths=(32, 64, 64, 64), convs=1), 64, 16),
    "mwcnn_reference": ("mwcnn", dict(widths=(160, 256, 256), convs=3), 96, 8),
    "dncnn": ("dncnn", dict(features=64, depth=17), 96, 8),
}
SMOKE = {
    "dbsn": (dict(features=8, blocks=(1, 1)), 16, 2),
    "noise": (dict(features=8, hidden_layers=1), 16, 2),
    "mwcnn": (dict(widths=(4, 8, 8), convs=1), 16, 2),
    "dncnn": (dict(features=8, depth=3), 16, 2),
}


def matmul_gflops(n: int = 2048, reps: int = 10):
  """Best-of-`reps` fp32 rate of one n x n matmul (this machine's dense peak): GFLOP
  per wall second and per CPU second (the latter barely moves when others share the
  cores, so a step's rate per CPU second over it is a load-independent efficiency)."""
  rng = np.random.default_rng(0)
  a, b = (jnp.asarray(rng.random((n, n), np.float32)) for _ in range(2))
  f = jax.jit(jnp.matmul)
  f(a, b).block_until_ready()
  wall = cpu = np.inf
  for _ in range(reps):
    t, (c, _) = time.perf_counter(), _usage()
    f(a, b).block_until_ready()
    wall, cpu = min(wall, time.perf_counter() - t), min(cpu, _usage()[0] - c)
  return 2 * n**3 / wall / 1e9, 2 * n**3 / cpu / 1e9


def count_flops(fn, *args) -> int:
  """2 x multiply-adds of every conv and dot_general in `fn`'s jaxpr (nested included)."""
  def walk(jaxpr):
    total = 0
    for eqn in jaxpr.eqns:
      name = eqn.primitive.name
      if name == "conv_general_dilated":
        rhs = eqn.invars[1].aval.shape
        spec = eqn.params["dimension_numbers"].rhs_spec  # (out, in, spatial...)
        per_out = rhs[spec[1]] * int(np.prod([rhs[d] for d in spec[2:]]))
        total += 2 * int(np.prod(eqn.outvars[0].aval.shape)) * per_out
      elif name == "dot_general":
        (lc, _), _ = eqn.params["dimension_numbers"]
        k = int(np.prod([eqn.invars[0].aval.shape[d] for d in lc]))
        total += 2 * int(np.prod(eqn.outvars[0].aval.shape)) * k
      for p in eqn.params.values():
        for sub in (p if isinstance(p, (tuple, list)) else (p,)):
          if isinstance(sub, jax.extend.core.ClosedJaxpr):
            total += walk(sub.jaxpr)
          elif isinstance(sub, jax.extend.core.Jaxpr):
            total += walk(sub)
    return total
  return walk(jax.make_jaxpr(fn)(*args).jaxpr)


def memory_mb(compiled) -> float:
  """Peak bytes XLA plans for one call: arguments + outputs + temporaries - aliased."""
  m = compiled.memory_analysis()
  if m is None:
    return float("nan")
  return (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
          - m.alias_size_in_bytes) / 2**20


class Case:
  """One model with one conv implementation: compiled train step and forward pass."""

  def __init__(self, kind, arch, patch, batch, impl, fwd_hw, channels=1, flops=None):
    rng = np.random.default_rng(0)
    self.batch, self.impl = batch, impl
    impl, _, micro = impl.partition("/mb")
    x = rng.random((batch, patch, patch, channels), np.float32)
    y = jnp.asarray(rng.random((1,) + fwd_hw + (channels,), np.float32))
    if kind == "dbsn":
      c = defaults.stage1()
      c.channels = channels
      c.model.features, c.model.blocks = arch["features"], arch["blocks"]
      c.data.patch_size, c.data.batch_size = patch, batch
      c.train.microbatch = int(micro or 0)
      model = stage1.build_model(c)
      model = model.clone(dbsn=model.dbsn.clone(conv_impl=impl))
      state = stage1.create_state(c, model)
      step = stage1.make_train_step(c, model)
      batch_in = {"image": x, "image_id": np.zeros((batch,), np.int32)}
      ids = jnp.zeros((1,), jnp.int32)
      denoise = stage1.make_denoise_fn(model)
      fwd, fwd_args = (lambda p, v: denoise(p, v, ids)), (state.params, y)
      self.weights = lambda st: st.params  # noqa: E731
      flop_fn = lambda p, v: model.apply({"params": p}, v, ids)  # noqa: E731
    else:
      if kind == "noise":
        model = NoiseEstimator(channels=channels, **arch)
      elif kind == "mwcnn":
        model = MWCNN(channels=channels, conv_impl=impl, **arch)
      else:
        model = DnCNN(channels=channels, conv_impl=impl, **arch)
      state, step, batch_in = _generic_step(model, x)
      apply = jax.jit(lambda v, im: model.apply(v, im))
      fwd, fwd_args = apply, (state[0], y)
      self.weights = lambda st: st[0]  # noqa: E731
      flop_fn = lambda v, im: model.apply(v, im)  # noqa: E731
    # Nominal work, the same for every implementation: counted on the plain path.
    self.fwd_flops, self.train_flops = flops or (
        count_flops(flop_fn, *fwd_args), 3 * count_flops(flop_fn, fwd_args[0], jnp.asarray(x)))
    self.params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(
        state.params if hasattr(state, "params") else state[0]["params"]))
    t = time.perf_counter()
    self.step = step.lower(state, batch_in).compile()
    self.train_compile_s = time.perf_counter() - t
    t = time.perf_counter()
    self.fwd = jax.jit(fwd).lower(*fwd_args).compile()
    self.fwd_compile_s = time.perf_counter() - t
    self.state, self.batch_in, self.y = state, batch_in, y
    self.train_s = self.fwd_s = self.train_cpu_s = np.inf
    self.faults = 0

  def time_train(self):
    t, (cpu, faults) = time.perf_counter(), _usage()
    self.state, out = self.step(self.state, self.batch_in)
    jax.block_until_ready((self.state, out))
    wall, (cpu2, faults2) = time.perf_counter() - t, _usage()
    if wall < self.train_s:
      self.train_s, self.train_cpu_s, self.faults = wall, cpu2 - cpu, faults2 - faults

  def time_forward(self):
    t = time.perf_counter()
    jax.block_until_ready(self.fwd(self.weights(self.state), self.y))
    self.fwd_s = min(self.fwd_s, time.perf_counter() - t)


def _usage():
  """(CPU seconds of this process, minor page faults) so far."""
  r = resource.getrusage(resource.RUSAGE_SELF)
  return r.ru_utime + r.ru_stime, r.ru_minflt


def _generic_step(model, x):
  """(state, jitted donated Adam step on the MSE to the clean patch, batch)."""
  noisy = x + 0.1 * np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
  variables = model.init(jax.random.PRNGKey(0), jnp.asarray(x))
  tx = optax.adam(1e-4)
  has_bn = "batch_stats" in variables

  def loss(params, extra, y, clean):
    v = {"params": params, **extra}
    if has_bn:
      out, upd = model.apply(v, y, train=True, mutable=["batch_stats"])
    else:
      out, upd = model.apply(v, y), {}
    if isinstance(model, NoiseEstimator):  # Gaussian NLL of the residual, per pixel.
      var = out[..., 0, 0]
      return jnp.mean((y - clean)[..., 0] ** 2 / var + jnp.log(var)), upd
    return jnp.mean((out - clean) ** 2), upd

  def step(state, batch):
    variables, opt = state
    params = variables["params"]
    extra = {k: v for k, v in variables.items() if k != "params"}
    (l, upd), g = jax.value_and_grad(loss, has_aux=True)(params, extra, batch["y"], batch["x"])
    updates, opt = tx.update(g, opt, params)
    return ({**variables, **upd, "params": optax.apply_updates(params, updates)}, opt), l

  state = (variables, tx.init(variables["params"]))
  return state, jax.jit(step, donate_argnums=0), {"y": noisy, "x": x}


def run_model(name, impls, reps, fwd_hw):
  kind, arch, patch, batch = SPECS[name]
  if _SMOKE.value:
    arch, patch, batch = SMOKE[kind]
  if kind != "dbsn":  # s2b and micro-batches only change D-BSN's train step.
    impls = [i for i in impls if i != "s2b" and "/mb" not in i]
  # The plain path always runs (the baseline of every ratio), first: the FLOP count.
  cases = {"plain": Case(kind, arch, patch, batch, "plain", fwd_hw)}
  flops = cases["plain"].fwd_flops, cases["plain"].train_flops
  for i in impls:
    if i not in cases:
      cases[i] = Case(kind, arch, patch, batch, i, fwd_hw, flops=flops)
  for c in cases.values():  # Warm-up run of each compiled function.
    c.time_train()
    c.time_forward()
    c.train_s = c.fwd_s = np.inf
  for _ in range(reps):  # Round robin: load changes hit every implementation alike.
    for c in cases.values():
      c.time_train()
      c.time_forward()
  base = cases["plain"]
  rows = []
  for impl, c in cases.items():
    rows.append({
        "model": name, "impl": impl, "params": c.params, "patch": patch, "batch": batch,
        "train_s": c.train_s, "patches_per_s": batch / c.train_s,
        "train_gflop": c.train_flops / 1e9, "train_gflops": c.train_flops / c.train_s / 1e9,
        "train_mem_mb": memory_mb(c.step), "train_compile_s": c.train_compile_s,
        "train_cpu_s": c.train_cpu_s, "train_page_faults": c.faults,
        "forward": "%dx%d" % fwd_hw, "forward_s": c.fwd_s,
        "forward_mpix_s": fwd_hw[0] * fwd_hw[1] / c.fwd_s / 1e6,
        "forward_gflop": c.fwd_flops / 1e9, "forward_gflops": c.fwd_flops / c.fwd_s / 1e9,
        "forward_mem_mb": memory_mb(c.fwd), "forward_compile_s": c.fwd_compile_s,
        "train_speedup": base.train_s / c.train_s, "forward_speedup": base.fwd_s / c.fwd_s})
  return rows


COLUMNS = [("model", "model"), ("impl", "conv"), ("patches_per_s", "patches/s"),
           ("train_gflop", "GFLOP/step"), ("train_gflops", "GFLOP/s"),
           ("train_frac_peak", "of peak"), ("train_frac_peak_cpu", "of peak (CPU s)"),
           ("train_speedup", "x plain"),
           ("train_mem_mb", "mem MB"), ("train_page_faults", "faults"),
           ("train_compile_s", "compile s"),
           ("forward_mpix_s", "fwd MPix/s"), ("forward_gflops", "fwd GFLOP/s"),
           ("forward_frac_peak", "fwd of peak"), ("forward_speedup", "fwd x plain"),
           ("forward_mem_mb", "fwd mem MB")]


def table(rows, columns=COLUMNS) -> str:
  fmt = lambda v: (f"{v:.3g}" if isinstance(v, float) else str(v))  # noqa: E731
  lines = ["| " + " | ".join(h for _, h in columns) + " |", "|---" * len(columns) + "|"]
  lines += ["| " + " | ".join(fmt(r[k]) for k, _ in columns) + " |" for r in rows]
  return "\n".join(lines)


def memory_check(batch, device_gb):
  """Compiled memory of the accelerator configs' stage-1 train step (not run)."""
  import importlib.util
  rows = []
  for cfg_name in ("gray_awgn",) if _SMOKE.value else ("gray_awgn", "color_awgn"):
    spec = importlib.util.spec_from_file_location(cfg_name, f"configs/{cfg_name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    c = mod.get_config().stage1
    if _SMOKE.value:
      c.model.features, c.model.blocks, c.data.patch_size = 8, (1, 1), 16
    c.data.batch_size = batch
    # Three ways to the batch: one pass; one pass recomputing each MDC in the backward
    # pass; two passes of half the batch (`train.microbatch`, gradients summed).
    for remat, micro in ((False, 0), (True, 0), (False, max(batch // 2, 1))):
      c.train.microbatch = micro
      model = stage1.build_model(c)
      # Accelerators take the plain (native) convolutions: conv_impl='auto' off CPU.
      model = model.clone(dbsn=model.dbsn.clone(conv_impl="plain", remat=remat))
      state = jax.eval_shape(lambda: stage1.create_state(c, model))  # noqa: B023
      p = c.data.patch_size
      batch_in = {"image": jax.ShapeDtypeStruct((batch, p, p, c.channels), jnp.float32),
                  "image_id": jax.ShapeDtypeStruct((batch,), jnp.int32)}
      t = time.perf_counter()
      compiled = stage1.make_train_step(c, model).lower(state, batch_in).compile()
      mb = memory_mb(compiled)
      rows.append({"config": cfg_name, "compute_dtype": c.get("compute_dtype", "float32"),
                   "batch": f"{batch} x {p}x{p}", "remat": remat,
                   "microbatch": micro or batch, "mem_gb": mb / 1024,
                   "fits": mb / 1024 <= device_gb, "compile_s": time.perf_counter() - t})
  return rows


def main(argv):
  del argv
  tunables = os.environ.get("GLIBC_TUNABLES", "")
  if _HUGEPAGES.value and HUGETLB not in tunables:
    # XLA's large CPU buffers are fresh mmaps on every call: with 4 KB pages a
    # reference-size step takes 2.2 M first-touch faults. Only settable at process start.
    env = dict(os.environ, GLIBC_TUNABLES=":".join(filter(None, [tunables, HUGETLB])))
    os.execve(sys.executable, [sys.executable] + sys.argv, env)
  if _XLA_KERNELS.value:
    xla_cpu.use_xla_kernels()  # Before the backend starts (jax.default_backend below).
  info = {"jax": jax.__version__, "backend": jax.default_backend(),
          "cpu": platform.processor() or platform.machine(), "time": time.ctime(),
          "glibc_tunables": tunables,
          "xla_flags": os.environ.get("XLA_FLAGS", "")}
  if not (_SPEED.value or _MEMORY.value):
    raise app.UsageError("--nospeed without --memory leaves nothing to measure")
  result = {"info": info}
  if _SPEED.value:
    reps = 1 if _SMOKE.value else _REPS.value
    fwd_hw = (32, 48) if _SMOKE.value else tuple(map(int, _FWD.value.split("x")))
    peak_reps = 2 if _SMOKE.value else 10
    for name in _MODELS.value.split(","):
      if name not in SPECS:
        raise app.UsageError(f"--models: unknown model {name!r}; choose from {sorted(SPECS)}")
    mm = 512 if _SMOKE.value else 2048
    peaks = [matmul_gflops(mm, peak_reps)]
    rows = []
    for name in _MODELS.value.split(","):
      rows += run_model(name, _IMPLS.value.split(","), reps, fwd_hw)
      print(f"measured {name}", flush=True)
    peaks.append(matmul_gflops(mm, peak_reps))
    peak, peak_cpu = max(p[0] for p in peaks), max(p[1] for p in peaks)  # The quieter.
    for r in rows:
      r["train_frac_peak"] = r["train_gflops"] / peak
      r["train_frac_peak_cpu"] = r["train_gflop"] / r["train_cpu_s"] / peak_cpu
      r["forward_frac_peak"] = r["forward_gflops"] / peak
    print(f"dense fp32 matmul peak ({mm}^2, best of {peak_reps}, start / end of run): "
          + " / ".join(f"{p[0]:.0f}" for p in peaks) + " GFLOP/s; per CPU second: "
          + " / ".join(f"{p[1]:.0f}" for p in peaks))
    print(table(rows))
    result.update(matmul_gflops=peaks, peak_gflops=peak, peak_gflops_per_cpu_s=peak_cpu,
                  rows=rows)
  if _MEMORY.value:
    mem_rows = memory_check(_MEM_BATCH.value, _DEVICE_GB.value)
    print(table(mem_rows, [(k, k) for k in mem_rows[0]]))
    result["memory"] = mem_rows
  if _JSON.value:
    with open(_JSON.value, "w") as f:
      json.dump(result, f, indent=2)


if __name__ == "__main__":
  app.run(main)
