"""One run per workdir: an exclusive `flock` on `WORKDIR/.lock` for the run's lifetime.

Two trainers saving into one workdir destroy each other's checkpoints. The kernel
drops the lock when its holder exits in any way (kill -9 included), so a stale lock
file never blocks a rerun; the pid written in it only names the holder in messages.
"""
import contextlib
import os

try:
  import fcntl
except ImportError:  # Windows: no flock; runs are not protected from each other there.
  fcntl = None

LOCK_NAME = ".lock"


@contextlib.contextmanager
def exclusive(workdir: str):
  """Hold `workdir`'s lock inside the `with`; a ValueError naming the holder's pid if
  another process holds it."""
  os.makedirs(workdir, exist_ok=True)
  if fcntl is None:
    yield
    return
  path = os.path.join(workdir, LOCK_NAME)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
      raise ValueError(f"workdir {workdir} is in use by another run (pid {holder}); "
                       "wait for it to finish, stop it, or use another workdir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    yield
  finally:
    os.close(fd)  # Closing the descriptor releases the lock.


def for_run(workdir: str):
  """The lock a training job holds: process 0 takes it for all processes of a
  multi-host run (they share the workdir); the others hold nothing."""
  import jax
  return exclusive(workdir) if jax.process_index() == 0 else contextlib.nullcontext()
