"""Shared pieces of the command-line binaries."""
import logging as std_logging
import sys
from typing import Callable, Dict

from absl import logging

from dbsn_jax import xla_cpu


class _Quiet(std_logging.Filter):
  """Drop INFO chatter of libraries (orbax logs every file of every save)."""

  def filter(self, record):
    return record.levelno >= std_logging.WARNING or "dbsn_jax" in record.pathname


def setup():
  """Log this package's progress at INFO to stderr, libraries at WARNING; XLA's own CPU
  kernels instead of YNNPACK's fusions (`xla_cpu`). Call before any JAX computation."""
  xla_cpu.use_xla_kernels()
  logging.set_verbosity(logging.INFO)
  logging.use_absl_handler()
  logging.get_absl_handler().addFilter(_Quiet())


def fail(message: str):
  """Print one clear error line and exit with status 2."""
  logging.error("%s", message)
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def guard(fn: Callable):
  """Run `fn`; turn configuration/input errors into one clear line and exit code 2."""
  try:
    return fn()
  except (ValueError, OSError, FloatingPointError) as e:  # OSError: e.g. a full disk.
    fail(str(e))


def markdown_table(rows: Dict[str, Dict[str, float]]) -> str:
  """`{row: {column: value}}` as a Markdown table (columns from the first row)."""
  cols = sorted({c for r in rows.values() for c in r})
  lines = ["| | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
  for name, r in rows.items():
    lines.append(f"| {name} | " + " | ".join(
        f"{r[c]:.4f}" if c in r else "-" for c in cols) + " |")
  return "\n".join(lines)


def parse_flags(argv):
  """absl flag parsing that turns a bad flag or config override into one clear line.

  ml_collections raises AttributeError / KeyError / TypeError for an unknown config
  field or a value of the wrong type, from deep inside its override code.
  """
  from absl import flags
  try:
    return flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
    overrides = [a for a in argv[1:] if a.startswith("--config.")]
    hint = f" (check: {' '.join(overrides)})" if overrides else ""
    print(f"error: bad flag or config override: {e}{hint}", file=sys.stderr)
    sys.exit(2)
