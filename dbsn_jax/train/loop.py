"""The training loop shared by both stages: resume, log, evaluate, checkpoint.

Resume is exact: the checkpoint holds the state (with its PRNG key and step) and the
input iterator's position, so N steps with an interruption equal N steps without.
SIGTERM / SIGINT finish the current step, save, and exit cleanly.
"""
import contextlib
import os
import signal
import time
from typing import Any, Callable, Dict, Optional

import jax
import numpy as np
from absl import logging

from dbsn_jax.data import input_pipeline
from dbsn_jax.train import checkpoints, parallel


class _StopFlag:
  """Set by SIGTERM / SIGINT; the loop saves and exits at the next step boundary."""

  def __init__(self):
    self.stop = False

  def __call__(self, signum, frame):
    logging.warning("signal %d: saving a checkpoint and stopping", signum)
    self.stop = True


@contextlib.contextmanager
def _signals(flag):
  try:
    old = {s: signal.signal(s, flag) for s in (signal.SIGTERM, signal.SIGINT)}
  except ValueError:  # Not in the main thread: no handlers.
    old = {}
  try:
    yield
  finally:
    for s, h in old.items():
      signal.signal(s, h)


class Writer:
  """TensorBoard scalars/images (process 0 only) and console progress lines."""

  def __init__(self, workdir: str):
    self._tb = None
    if jax.process_index() == 0:
      try:
        from tensorboardX import SummaryWriter
        self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
      except ImportError:
        logging.warning("tensorboardX is not installed: no TensorBoard logs")

  def scalars(self, step: int, values: Dict[str, float]):
    if self._tb:
      for k, v in values.items():
        self._tb.add_scalar(k, float(v), step)

  def images(self, step: int, images: Dict[str, np.ndarray]):
    if self._tb:
      for k, v in images.items():
        self._tb.add_image(k, np.clip(v, 0, 1), step, dataformats="HWC")

  def flush(self):
    if self._tb:
      self._tb.flush()


def identity(config) -> Dict:
  """The config fields (a ConfigDict or a saved dict) that a resumed run must share with
  the checkpoint it resumes, and whether the state keeps an EMA of its weights or clips
  its gradients.

  Not the compute dtype: parameters are fp32 either way (older configs kept it as
  model.dtype / denoiser.dtype).
  """
  d = config if isinstance(config, dict) else config.to_dict()
  out = {k: d.get(k) for k in ("stage", "channels", "model", "noise_model", "denoiser")}
  optim = d.get("optim") or {}
  out["ema"] = bool(optim.get("ema_decay", 0))
  # Clipping adds a link to the optimizer chain: a state with it cannot load one without.
  out["gradient clipping"] = bool(optim.get("clip_norm", 0))
  return {k: ({f: w for f, w in v.items() if f != "dtype"} if isinstance(v, dict) else v)
          for k, v in out.items()}


def eval_drops(before: Dict[str, float], after: Dict[str, float],
               tolerance_db: float = 1.0) -> Dict[str, tuple]:
  """{metric: (before, after)} for each PSNR that fell by more than `tolerance_db` between
  two evaluations: training that diverged (an Adam step that pushed units dead, see
  docs/configs.md `optim.b2`) shows here, on fixed images, before the run ends."""
  return {k: (before[k], v) for k, v in after.items()
          if k.startswith("psnr") and k in before and before[k] - v > tolerance_db}


def run(config, workdir: str, state: Any, train_step: Callable, dataset,
        evaluate: Optional[Callable[[Any, int], Dict[str, float]]] = None,
        images_for_tb: Optional[Callable[[Any], Dict[str, np.ndarray]]] = None,
        extra: Optional[Dict] = None) -> Any:
  """Train `state` for config.train.num_steps with `train_step(state, batch)`.

  Returns the final state. Resumes from the newest checkpoint in `workdir`. `extra`
  is stored beside the config in every checkpoint (e.g. the number of images).
  `dataset` yields local batches in global order (see `parallel`); this process
  reads its own share. `evaluate` and `images_for_tb` get a single-device copy of the
  state; only process 0 logs and writes files.
  """
  saved_config = {**config.to_dict(), **(extra or {})}
  tcfg = config.train
  os.makedirs(workdir, exist_ok=True)
  mgr = checkpoints.manager(workdir, tcfg.keep_checkpoints)
  iterator = input_pipeline.train_iterator(parallel.process_shard(dataset), config.data.num_threads)
  mesh = parallel.make_mesh()
  state = parallel.replicate(state, mesh)  # Restored below straight into this layout.
  primary = jax.process_index() == 0
  if mgr.latest_step() is not None:
    # Compare configs first, so a different architecture gets a message naming it.
    saved = checkpoints.read_config(workdir)
    want = identity(config)
    got = identity(saved)
    if _jsonable(got) != _jsonable(want):
      diff = [k for k in want if _jsonable(got[k]) != _jsonable(want[k])]
      raise ValueError(f"workdir {workdir} holds a run with different {', '.join(diff)}; "
                       "use a new workdir to train a different architecture")
    state, data_state, _ = checkpoints.restore(mgr, state)
    iterator.set_state(data_state)
    logging.info("resumed from step %d in %s", int(state.step), workdir)
  if primary:
    checkpoints.write_json(os.path.join(workdir, "config.json"), saved_config)
  writer = Writer(workdir)
  flag = _StopFlag()
  start = int(state.step)
  t0, last_t, last_step, skipped, skipped_total = time.time(), time.time(), start, 0, 0
  batch_size = parallel.global_batch_size(config.data.batch_size)
  last_eval: Dict[str, float] = {}
  with _signals(flag):
    step = start
    while step < tcfg.num_steps and not flag.stop:
      batch = parallel.shard_batch(next(iterator), mesh)
      state, metrics = train_step(state, batch)
      step += 1
      ok = bool(metrics["finite"])
      skipped = 0 if ok else skipped + 1
      skipped_total += 0 if ok else 1
      if not ok:
        logging.warning("step %d: non-finite loss or gradient, update skipped (%d in a row)",
                        step, skipped)
        if skipped >= tcfg.max_nonfinite:
          raise FloatingPointError(
              f"{skipped} consecutive non-finite steps at step {step}; the last good "
              f"checkpoint in {workdir} is intact (lower optim.lr?)")
      if step % tcfg.log_every == 0 or step == tcfg.num_steps:
        m = {k: float(v) for k, v in jax.device_get(metrics).items()}
        now = time.time()
        rate = (step - last_step) / max(now - last_t, 1e-9)
        eta = (tcfg.num_steps - step) / max(rate, 1e-9)
        noise_std = ""
        if "noise_std" in m:  # Stage 1: the learned noise level, against the truth if known.
          noise_std = f"  noise std {m['noise_std']:.2f}" + (
              f" (true {m['noise_std_true']:.2f})" if "noise_std_true" in m else "")
        grad = f"  grad norm {m['grad_norm']:.3g}" if "grad_norm" in m else ""
        logging.info("step %d/%d  loss %.5f%s%s  %.2f steps/s  %.1f patches/s  ETA %s",
                     step, tcfg.num_steps, m["loss"], grad, noise_std, rate, rate * batch_size,
                     time.strftime("%H:%M:%S", time.gmtime(eta)))
        writer.scalars(step, {f"train/{k}": v for k, v in m.items()})
        writer.scalars(step, {"train/steps_per_sec": rate,
                              "train/skipped_steps": skipped_total})
        last_t, last_step = now, step
      if evaluate and (step % config.eval.every_steps == 0 or step == tcfg.num_steps):
        results = evaluate(parallel.local_copy(state), step)
        logging.info("eval step %d: %s", step,
                     "  ".join(f"{k} {v:.3f}" for k, v in results.items()))
        for k, (a, b) in eval_drops(last_eval, results).items():
          logging.warning("%s fell from %.2f to %.2f dB since the last evaluation: training "
                          "has most likely diverged (see 'train/loss' in TensorBoard, and "
                          "optim.b2 in docs/configs.md)", k, a, b)
        last_eval = results
        writer.scalars(step, {f"eval/{k}": v for k, v in results.items()})
        if images_for_tb and primary:
          writer.images(step, images_for_tb(parallel.local_copy(state)))
      if step % tcfg.checkpoint_every == 0 or step == tcfg.num_steps or flag.stop:
        checkpoints.save(mgr, step, state, iterator.get_state(), saved_config)
  if flag.stop and step < tcfg.num_steps:
    logging.warning("stopped by signal at step %d; rerun the same command to resume", step)
  writer.flush()
  logging.info("trained %d steps in %.1f s", step - start, time.time() - t0)
  return state


def _jsonable(x):
  """Normalise tuples to lists so a config compares equal to its JSON round trip."""
  import json
  return json.loads(json.dumps(x))
