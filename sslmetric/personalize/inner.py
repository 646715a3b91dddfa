"""The inner loop κ_u(w) (METHOD.md §2) and per-user fitting from the meta-learned w.

    κ_u(w) = w_t,   w_0 = w,   w_{k+1} = w_k − ω ∇ℓ_u(w_k)   (k = 0..t−1)

(the paper prints "+"; descent is meant). The loop is a `lax.scan`, so `jax.grad` of
anything built on κ_u differentiates through the unrolled steps (exact second order).
Everything here is per user and unbatched; :func:`map_users` is the one place where
per-user code is batched (vmap over chunks of users; used by personalize_users and by
the meta-gradients in meta.py).
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple, Optional

import jax

from sslmetric.model.ensemble import EnsembleWeights
from sslmetric.personalize.objective import UserData, nll_and_grad_fn


def default_chunk_size(num_users: int) -> int:
  """Users evaluated at once by the vmap: 1 on CPU, the whole batch on accelerators.

  On XLA:CPU a vmapped batch streams every user's [p, n, n] distances and [n, n]
  intermediates through memory at each op (64 users × 200 items: ~100 MB of distances
  and ~20 MB per intermediate), while one user's working set (~3 MB) stays in cache;
  in benchmarks/meta_step.py (64 users × 200 items, exact meta-step) one user at a
  time ran ~2× faster than the full vmap and as fast as a Python loop of jitted calls.
  """
  return 1 if jax.default_backend() == "cpu" else max(num_users, 1)


def map_users(fn: Callable, users: UserData, chunk_size: Optional[int]):
  """fn applied per user: `jax.vmap` over chunks of `chunk_size` users, chunks in turn.

  This is the one place where per-user code is batched. chunk_size ≥ B is a plain
  vmap over the batch; smaller chunks run in turn (`lax.map`), which on CPU is faster;
  chunk_size = 1 runs unbatched per-user code in a loop (the CPU default).

  Args:
    fn: per-user function of one :class:`UserData` (a pytree of arrays out).
    users: a batch [B, ...].
    chunk_size: users per vmap; None: :func:`default_chunk_size`.

  Returns:
    fn's outputs stacked over the B users.
  """
  num_users = users.y.shape[0]
  chunk = default_chunk_size(num_users) if chunk_size is None else int(chunk_size)
  if chunk >= num_users:
    return jax.vmap(fn)(users)
  if chunk <= 1:
    return jax.lax.map(fn, users)  # one user per iteration, unbatched ops
  return jax.lax.map(fn, users, batch_size=chunk)


def _descent_step(objective: str, noise_var, jitter, step_size, user: UserData):
  nll_and_grad = nll_and_grad_fn(objective)

  def step(w, _):
    value, grad = nll_and_grad(w, user, noise_var=noise_var, jitter=jitter)
    # w_{k+1} = w_k − ω ∇ℓ_u(w_k)
    w_next = jax.tree.map(lambda a, g: a - step_size * g, w, grad)
    return w_next, value

  return step


def inner_loop(w: EnsembleWeights, user: UserData, *, steps: int, step_size, noise_var,
               jitter: Optional[float] = None,
               objective: str = "hand") -> EnsembleWeights:
  """κ_u(w): `steps` gradient-descent steps on ℓ_u from w, as a `lax.scan`. Unbatched.

  Args:
    w: the starting (meta) weights (h [p], b []).
    user: one user's :class:`~sslmetric.personalize.objective.UserData`.
    steps: t, the number of steps (static).
    step_size: ω.
    noise_var: σ².
    jitter: see :func:`~sslmetric.personalize.objective.user_nll`.
    objective: one of :data:`~sslmetric.personalize.objective.OBJECTIVES`: "hand"
      (hand-derived derivatives, reverse mode; default), "hand_jvp" (also forward
      mode) or "autodiff" (the plain-JAX reference).

  Returns:
    w_t = κ_u(w); `jax.grad` through it is the exact second-order meta-gradient.
  """
  step = _descent_step(objective, noise_var, jitter, step_size, user)
  w_t, _ = jax.lax.scan(step, w, None, length=steps)
  return w_t


class PersonalizeResult(NamedTuple):
  """A per-user fit: the final weights and the loss before each step."""
  w: EnsembleWeights  # w_u after `iterations` steps
  losses: jax.Array  # [iterations] ℓ_u(w_k), k = 0..iterations−1


@functools.partial(jax.jit, static_argnames=("iterations", "objective"))
def personalize(w_meta: EnsembleWeights, user: UserData, *, iterations: int = 2000,
                step_size, noise_var, jitter: Optional[float] = None,
                objective: str = "hand") -> PersonalizeResult:
  """w_u: the inner loop run longer (the paper: 2000 steps) from the meta-learned w.

  No gradient flows back through this fit (it is the deployment-time adaptation).
  Unbatched; see :func:`personalize_users` for a batch.

  Args:
    w_meta: the meta-learned weights.
    user: one user's data (its first 80% of items in the personal protocol).
    iterations: number of descent steps (static).
    step_size: ω.
    noise_var: σ².
    jitter: see :func:`~sslmetric.personalize.objective.user_nll`.
    objective: see :func:`inner_loop`.

  Returns:
    :class:`PersonalizeResult` with w_u and the loss trace.
  """
  w_meta = jax.lax.stop_gradient(w_meta)
  step = _descent_step(objective, noise_var, jitter, step_size, user)
  w_u, losses = jax.lax.scan(step, w_meta, None, length=iterations)
  return PersonalizeResult(w=w_u, losses=losses)


@functools.partial(jax.jit, static_argnames=("iterations", "objective", "chunk_size"))
def personalize_users(w_meta: EnsembleWeights, users: UserData, *,
                      iterations: int = 2000, step_size, noise_var,
                      jitter: Optional[float] = None, objective: str = "hand",
                      chunk_size: Optional[int] = None) -> PersonalizeResult:
  """:func:`personalize` over a batch of users (leading axis), via :func:`map_users`."""
  fit = functools.partial(personalize, w_meta, iterations=iterations,
                          step_size=step_size, noise_var=noise_var, jitter=jitter,
                          objective=objective)
  return map_users(fit, users, chunk_size)
