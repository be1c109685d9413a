"""XLA settings for CPU runs, applied to the environment before JAX starts its backend.

XLA's CPU backend (jaxlib >= 0.9) hands convolutions and their gradients to YNNPACK
fusions; on this package's networks XLA's own kernels run them 1.4-2x faster in a
train step (MWCNN, D-BSN without micro-batches; docs/speed.md, "YNNPACK fusions"), so
the binaries turn the fusions off. XLA reads `XLA_FLAGS` once, when the backend starts
(the first computation, not `import jax`), and aborts the process on a flag it does not
know, hence the version check.
"""
import os
import re
from importlib import metadata
from typing import MutableMapping, Optional

FLAG = "--xla_cpu_experimental_ynn_fusion_type"
FIRST_JAXLIB = (0, 9, 0)  # The first jaxlib whose XLA knows FLAG (0.8.0 does not).


def _release(version: str):
  """'0.10.2' -> (0, 10, 2); pre-release or local tails are dropped."""
  parts = []
  for p in version.split(".")[:3]:
    digits = re.match(r"\d*", p).group()
    if not digits:
      break
    parts.append(int(digits))
  return tuple(parts)


def jaxlib_version() -> Optional[str]:
  """The installed jaxlib's version string, or None."""
  try:
    return metadata.version("jaxlib")
  except metadata.PackageNotFoundError:
    return None


def use_xla_kernels(environ: Optional[MutableMapping[str, str]] = None,
                    version: Optional[str] = None) -> bool:
  """Add `FLAG=` (no YNNPACK fusions) to `environ['XLA_FLAGS']` (default: os.environ).

  Leaves XLA_FLAGS alone where it already names FLAG (the user's choice wins) or where
  jaxlib predates the flag; returns whether it added it. Only takes effect before the
  process's first JAX computation; it changes which kernels run, not what they compute.
  """
  environ = os.environ if environ is None else environ
  version = jaxlib_version() if version is None else version
  flags = environ.get("XLA_FLAGS", "")
  if FLAG in flags or version is None or _release(version) < FIRST_JAXLIB:
    return False
  environ["XLA_FLAGS"] = f"{flags} {FLAG}=".strip()
  return True
