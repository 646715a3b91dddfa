"""The project's CPU threading settings: PJRT_NPROC=1 and OPENBLAS_NUM_THREADS=1.

docs/threading.md has the measurements. In short, on jax 0.10.2:

* PJRT_NPROC=1 (one XLA:CPU worker thread; read when JAX creates its CPU backend).
  With the default pool, `jit(grad(mean(vmap(ℓ(w − ω∇ℓ(w))))))` — a second-order
  gradient through a vmapped Cholesky and triangular solve — deadlocks: the pool's
  worker threads all block inside the batched LAPACK triangular-solve kernel, waiting
  for sub-tasks queued on the same pool (0% CPU, forever; seen at 3 users × 200 items
  on 2 cores). PJRT_NPROC=1 was the only setting that cured it; the XLA flags
  `--xla_cpu_multi_thread_eigen=false` and
  `--xla_cpu_enable_concurrency_optimized_scheduler=false` did not.
* OPENBLAS_NUM_THREADS=1 (read when scipy's OpenBLAS, which jaxlib's CPU LAPACK
  kernels call, is loaded). With OpenBLAS's own threads on top of XLA's, unbatched
  Cholesky factors and triangular solves were 10-100× slower on a busy machine (a
  64×64 Cholesky-based step: 10-140 ms instead of 0.8 ms). Not a freeze, so a late
  call only reports it.

:func:`ensure_safe_cpu_threading` sets both before they are read (the package's
``__init__`` calls it), keeps any value the user set explicitly, and warns when the
freeze-relevant one cannot take effect or is set unsafely.
"""

from __future__ import annotations

import enum
import os
import sys
import warnings
from typing import NamedTuple

PJRT_VAR = "PJRT_NPROC"
OPENBLAS_VAR = "OPENBLAS_NUM_THREADS"
SAFE_VALUE = "1"


class ThreadingAction(str, enum.Enum):
  """What :func:`ensure_safe_cpu_threading` did with one variable."""
  SET = "set"  # unset and not yet read: set to 1
  ALREADY_SAFE = "already_safe"  # already 1 in the environment
  USER_OVERRIDE = "user_override"  # the user set another value: kept
  TOO_LATE = "too_late"  # already read by the library without it: cannot take effect


class ThreadingReport(NamedTuple):
  pjrt_nproc: ThreadingAction
  openblas_num_threads: ThreadingAction


def _jax_backend_started() -> bool:
  """Whether JAX has already created its backends (so PJRT_NPROC is no longer read)."""
  if "jax" not in sys.modules:
    return False
  try:
    from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
    return bool(xla_bridge.backends_are_initialized())
  except Exception:  # pylint: disable=broad-except
    return True  # cannot tell: assume the worst, so the user is told


def _openblas_loaded() -> bool:
  """Whether scipy's linear algebra (hence its OpenBLAS) is already loaded."""
  return "scipy.linalg" in sys.modules


def _ensure(var: str, already_read: bool) -> ThreadingAction:
  current = os.environ.get(var)
  if current is not None:
    return (ThreadingAction.ALREADY_SAFE if current.strip() == SAFE_VALUE
            else ThreadingAction.USER_OVERRIDE)
  if already_read:
    return ThreadingAction.TOO_LATE
  os.environ[var] = SAFE_VALUE
  return ThreadingAction.SET


def ensure_safe_cpu_threading() -> ThreadingReport:
  """Sets PJRT_NPROC=1 and OPENBLAS_NUM_THREADS=1 unless too late or set by the user.

  Call before any JAX computation (importing `jax` is fine; running anything creates
  the backend) and before importing `scipy.linalg`. Idempotent.

  Returns:
    The :class:`ThreadingAction` taken for each variable.

  Warns:
    RuntimeWarning: PJRT_NPROC is set to a value other than 1 (kept: the user chose
      it), or JAX's backend already started without it (it cannot take effect in this
      process; set PJRT_NPROC=1 in the environment, or import sslmetric before running
      any JAX computation). OpenBLAS's setting is only reported, not warned about: it
      costs speed, not correctness.
  """
  pjrt = _ensure(PJRT_VAR, _jax_backend_started())
  if pjrt is ThreadingAction.USER_OVERRIDE:
    warnings.warn(
        f"{PJRT_VAR}={os.environ[PJRT_VAR]!r} is set in the environment; sslmetric "
        "keeps it, but with more than one XLA:CPU worker thread a second-order "
        "gradient through a vmapped Cholesky/triangular solve can deadlock "
        f"(docs/threading.md). Unset it or set {PJRT_VAR}=1 unless you know the "
        "workload avoids that pattern.", RuntimeWarning, stacklevel=2)
  elif pjrt is ThreadingAction.TOO_LATE:
    warnings.warn(
        f"JAX's backend was started before sslmetric could set {PJRT_VAR}=1, so the "
        "XLA:CPU thread pool has its default size, under which a second-order "
        "gradient through a vmapped Cholesky/triangular solve can deadlock "
        f"(docs/threading.md). Set {PJRT_VAR}=1 in the environment before starting "
        "Python, or import sslmetric before running any JAX computation.",
        RuntimeWarning, stacklevel=2)
  openblas = _ensure(OPENBLAS_VAR, _openblas_loaded())
  return ThreadingReport(pjrt, openblas)
