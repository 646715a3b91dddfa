"""The meta objective L(w) = mean_u ℓ_u(κ_u(w)) (Eq. 9), its gradients, meta-training.

Three meta-gradients (`mode`):

* ``"exact"`` — `jax.grad` through the unrolled inner loop: ∇L = mean_u J_uᵀ ∇ℓ_u(w_t),
  J_u = ∂κ_u/∂w = Π_k (I − ω H_u(w_k)), H_u the Hessian of ℓ_u (second order, exact).
* ``"lemma1"`` — the second-order Taylor expansion of κ_u in the step size around ω = 0
  (our reading of the paper's Lemma 1), with ℓ_u treated as locally quadratic at w:
  J_u ≈ I − t ω H_u(w) + C(t, 2) ω² H_u(w)², so
  ∇L ≈ mean_u [g − t ω H g + C(t, 2) ω² H (H g)],  g = ∇ℓ_u(κ_u(w)), H = H_u(w).
  Two Hessian-vector products at w; no backward pass through the loop.
* ``"first_order"`` — J_u ≈ I: ∇L ≈ mean_u ∇ℓ_u(κ_u(w)).

Per-user code is unbatched; batches of users go through the one batching helper,
:func:`sslmetric.personalize.inner.map_users` (vmap over chunks of users). A user
whose mask is all False (batch padding, e.g. for sharding) has ℓ_u ≡ 0 and is left
out of the mean.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import optax

from sslmetric.model.ensemble import EnsembleWeights
from sslmetric.personalize.inner import inner_loop, map_users
from sslmetric.personalize.objective import UserData, hvp_fn, nll_and_grad_fn

MODES = ("exact", "lemma1", "first_order")


def user_meta_loss(w: EnsembleWeights, user: UserData, *, steps: int, step_size,
                   noise_var, jitter: Optional[float] = None,
                   objective: str = "hand") -> jax.Array:
  """ℓ_u(κ_u(w)) for one user (unbatched). Arguments as :func:`inner_loop`."""
  w_t = inner_loop(w, user, steps=steps, step_size=step_size, noise_var=noise_var,
                   jitter=jitter, objective=objective)
  return nll_and_grad_fn(objective)(w_t, user, noise_var=noise_var, jitter=jitter)[0]


def user_meta_grad(w: EnsembleWeights, user: UserData, *, mode: str, steps: int,
                   step_size, noise_var, jitter: Optional[float] = None,
                   objective: str = "hand"):
  """(ℓ_u(κ_u(w)), the `mode` meta-gradient of it) for one user (unbatched)."""
  kw = dict(noise_var=noise_var, jitter=jitter)
  if mode == "exact":
    return jax.value_and_grad(user_meta_loss)(w, user, steps=steps,
                                              step_size=step_size, objective=objective,
                                              **kw)
  if mode not in MODES:
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
  nll_and_grad = nll_and_grad_fn(objective)
  w_t = jax.lax.stop_gradient(
      inner_loop(w, user, steps=steps, step_size=step_size, objective=objective, **kw))
  value, g = nll_and_grad(w_t, user, **kw)  # ℓ_u(w_t), g = ∇ℓ_u(w_t)
  if mode == "first_order":
    return value, g

  def hvp(v):  # H_u(w) v at the meta point w
    return hvp_fn(objective)(w, user, v, **kw)

  hg = hvp(g)  # H g
  hhg = hvp(hg)  # H² g
  c1, c2 = steps * step_size, math.comb(steps, 2) * step_size**2
  # J ≈ I − t ω H + C(t, 2) ω² H²  (H symmetric, so Jᵀ g = J g)
  return value, jax.tree.map(lambda a, b, c: a - c1 * b + c2 * c, g, hg, hhg)


def _user_weights(users: UserData) -> jax.Array:
  """1 for a user with at least one item, 0 for an all-padding user: [B]."""
  return jnp.any(users.mask, axis=-1).astype(users.d.dtype)


def _masked_mean(x: jax.Array, weights: jax.Array) -> jax.Array:
  return jnp.sum(x * weights) / jnp.maximum(jnp.sum(weights), 1)


def per_user_meta_losses(w: EnsembleWeights, users: UserData, *,
                         chunk_size: Optional[int] = None, **kwargs) -> jax.Array:
  """[B] ℓ_u(κ_u(w)) for a batch of users (:func:`user_meta_loss`, batched)."""
  return map_users(lambda u: user_meta_loss(w, u, **kwargs), users, chunk_size)


def per_user_meta_grads(w: EnsembleWeights, users: UserData, *,
                        chunk_size: Optional[int] = None, **kwargs):
  """([B] losses, [B]-batched meta-gradients) (:func:`user_meta_grad`, batched)."""
  return map_users(lambda u: user_meta_grad(w, u, **kwargs), users, chunk_size)


def meta_loss(w: EnsembleWeights, users: UserData, *, steps: int, step_size, noise_var,
              jitter: Optional[float] = None, objective: str = "hand",
              chunk_size: Optional[int] = None) -> jax.Array:
  """L(w) = mean_u ℓ_u(κ_u(w)) (Eq. 9) over the users of the batch (leading axis).

  `jax.grad(meta_loss)` is the exact meta-gradient through the unrolled loop (the
  reference; :func:`meta_grad` computes the same per user, which is faster on CPU).
  """
  losses = per_user_meta_losses(w, users, steps=steps, step_size=step_size,
                                noise_var=noise_var, jitter=jitter, objective=objective,
                                chunk_size=chunk_size)
  return _masked_mean(losses, _user_weights(users))


def meta_grad(w: EnsembleWeights, users: UserData, *, mode: str = "exact", steps: int,
              step_size, noise_var, jitter: Optional[float] = None,
              objective: str = "hand", chunk_size: Optional[int] = None):
  """(L(w), ∇L(w)) over a batch of users; `mode` in :data:`MODES` (module docstring).

  "exact" equals `jax.value_and_grad(meta_loss)`: each user's `jax.value_and_grad`
  through its unrolled loop is taken inside the batching (so one user's forward and
  backward passes run back to back, in cache) and the results are averaged.

  Args:
    w: the meta weights.
    users: a batch of :class:`UserData` (leading axis B; all-padding users ignored).
    mode: "exact", "lemma1" or "first_order".
    steps, step_size, noise_var, jitter, objective: see :func:`inner_loop`.
    chunk_size: users per vmap (None: the default of
      :func:`sslmetric.personalize.inner.default_chunk_size`, 1 on CPU).

  Returns:
    (loss [], gradient as EnsembleWeights).
  """
  losses, grads = per_user_meta_grads(w, users, mode=mode, steps=steps,
                                      step_size=step_size, noise_var=noise_var,
                                      jitter=jitter, objective=objective,
                                      chunk_size=chunk_size)
  wts = _user_weights(users)  # a_u: [B]
  count = jnp.maximum(jnp.sum(wts), 1)
  # mean over real users, per component: Σ_u a_u ∇_u / Σ_u a_u
  return (_masked_mean(losses, wts),
          jax.tree.map(lambda g: jnp.tensordot(wts, g, axes=1) / count, grads))


class MetaTrainState(NamedTuple):
  """What crosses meta-steps."""
  w: EnsembleWeights  # the meta weights
  opt_state: optax.OptState
  step: jax.Array  # [] int, meta-steps taken


def init_meta_state(w0: EnsembleWeights,
                    optimizer: optax.GradientTransformation) -> MetaTrainState:
  """The state before the first meta-step.

  Weak types are dropped from w0 (e.g. `jnp.asarray(0.0)`), so the jitted step sees the
  same types at every step and compiles once.
  """
  w0 = jax.tree.map(lambda a: jnp.asarray(a, dtype=jnp.asarray(a).dtype), w0)
  return MetaTrainState(w0, optimizer.init(w0), jnp.zeros((), jnp.int32))


def make_meta_step(optimizer: optax.GradientTransformation, *, mode: str = "exact",
                   steps: int, step_size, noise_var, jitter: Optional[float] = None,
                   objective: str = "hand", chunk_size: Optional[int] = None,
                   grad_fn: Optional[Callable] = None):
  """A jitted `(state, users) -> (state, metrics)` meta-step.

  Args:
    optimizer: an optax transformation.
    mode, steps, step_size, noise_var, jitter, objective, chunk_size: see
      :func:`meta_grad`.
    grad_fn: optional replacement for :func:`meta_grad` with the same signature
      (e.g. the sharded one from :mod:`sslmetric.personalize.sharding`).

  Returns:
    step(state, users) -> (new state, {"meta_loss", "grad_norm"}). The metrics are those
    at the weights *before* the update.
  """
  grad_fn = meta_grad if grad_fn is None else grad_fn

  @jax.jit
  def step(state: MetaTrainState, users: UserData):
    loss, grad = grad_fn(state.w, users, mode=mode, steps=steps, step_size=step_size,
                         noise_var=noise_var, jitter=jitter, objective=objective,
                         chunk_size=chunk_size)
    updates, opt_state = optimizer.update(grad, state.opt_state, state.w)
    w = optax.apply_updates(state.w, updates)
    metrics = {"meta_loss": loss, "grad_norm": optax.tree.norm(grad)}
    return MetaTrainState(w, opt_state, state.step + 1), metrics

  return step


def meta_train(w0: EnsembleWeights,
               batches: Union[Iterable[UserData], Callable[[int], UserData]], *,
               optimizer: optax.GradientTransformation, num_steps: int,
               mode: str = "exact", steps: int, step_size, noise_var,
               jitter: Optional[float] = None, objective: str = "hand",
               chunk_size: Optional[int] = None, grad_fn: Optional[Callable] = None,
               callback: Optional[Callable[[int, dict], None]] = None):
  """Meta-trains w over batches of training users with optax.

  Args:
    w0: the starting weights (e.g. the SSL fit's w).
    batches: an iterable of :class:`UserData` batches (all of one shape, so the step
      compiles once), or a function step -> batch.
    optimizer: optax transformation (e.g. `optax.adam(1e-2)`).
    num_steps: meta-steps to take (fewer if `batches` runs out).
    mode, steps, step_size, noise_var, jitter, objective, chunk_size, grad_fn: see
      :func:`make_meta_step`.
    callback: called as `callback(step, metrics)` after every meta-step with host
      floats {"meta_loss", "grad_norm"} (metrics at the weights before that step).

  Returns:
    (final :class:`MetaTrainState`, list of per-step metric dicts).

  Raises:
    FloatingPointError: the meta-loss or gradient became non-finite (names the step).
  """
  step_fn = make_meta_step(optimizer, mode=mode, steps=steps, step_size=step_size,
                           noise_var=noise_var, jitter=jitter, objective=objective,
                           chunk_size=chunk_size, grad_fn=grad_fn)
  state = init_meta_state(w0, optimizer)
  source = (batches if callable(batches) else iter(batches).__next__)
  history = []
  for i in range(num_steps):
    try:
      users = source(i) if callable(batches) else source()
    except StopIteration:
      break
    state, metrics = step_fn(state, users)
    metrics = {k: float(v) for k, v in metrics.items()}
    if not all(math.isfinite(v) for v in metrics.values()):
      raise FloatingPointError(
          f"meta_train: non-finite meta-loss/gradient at meta-step {i}: {metrics}; "
          "lower step_size (ω) or the optimizer's learning rate, or raise noise_var")
    history.append(metrics)
    if callback is not None:
      callback(i, metrics)
  return state, history
