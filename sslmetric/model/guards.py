"""NaN/Inf guards for training loops.

`check_finite` runs on values a jitted step returned (outside jit) and raises
`FloatingPointError` naming the quantity, the pytree path of every offending leaf, the
counts of NaN and Inf, and the step. `all_finite` is its jittable counterpart: one bool
computed inside the step, so a loop can fetch a single scalar and call `check_finite`
on the full values only when it is False.

    loss, grads = step(...)
    check_finite({"loss": loss, "grads": grads}, name="train", step=i)
    # FloatingPointError: non-finite train at step 12: ['grads']['towers'][0]['w_o']
    #   (3 NaN, 0 Inf of 2000 entries)
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np


def all_finite(tree: Any) -> jax.Array:
  """True iff every floating-point entry of every leaf is finite (jittable)."""
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)
            if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
  if not leaves:
    return jnp.asarray(True)
  return jnp.all(jnp.stack(leaves))


def non_finite_report(tree: Any) -> list:
  """[(path, n_nan, n_inf, size)] for each leaf holding NaN or Inf (host-side)."""
  bad = []
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    arr = np.asarray(leaf)
    if not np.issubdtype(arr.dtype, np.inexact):
      continue
    n_nan = int(np.isnan(arr).sum())
    n_inf = int(np.isinf(arr).sum())
    if n_nan or n_inf:
      bad.append((jax.tree_util.keystr(path), n_nan, n_inf, int(arr.size)))
  return bad


def check_finite(tree: Any, *, name: str, step: Optional[int] = None) -> None:
  """Raises `FloatingPointError` if any leaf of `tree` holds NaN or Inf.

  Args:
    tree: an array, scalar or pytree of them (concrete values, not tracers).
    name: what the value is ("loss", "grads", "nll"), used in the message.
    step: optional training step, used in the message.
  """
  bad = non_finite_report(tree)
  if not bad:
    return
  where = f" at step {step}" if step is not None else ""
  parts = [f"{path or '<value>'} ({n_nan} NaN, {n_inf} Inf of {size} entries)"
           for path, n_nan, n_inf, size in bad]
  raise FloatingPointError(
      f"non-finite {name}{where}: " + "; ".join(parts) +
      ". Lower the learning rate, raise the noise floor or check the inputs; a NaN GP "
      "loss usually means a kernel matrix that is not positive definite.")
