"""Fitting for the theory check (`theory.py`): the PSD-shifted GP objective and its
optimisers (L-BFGS with restarts, Adam through `loop.train`).

Objective. The kernel is indefinite (distance.py), and the plain NLL of Eq. 6 rewards
that: an eigenvalue μ of Σ = K + σ²I with eigenvector v contributes ½ log μ + (vᵀy)²/(2μ),
minimised at μ = (vᵀy)² — far below σ² when y has little mass along v, which only an
indefinite K can reach. Fits drift there and the Cholesky fails (NaN). We therefore fit
the PSD-shifted likelihood (`psd_shifted_nll`)

    −log N(y | 0, K + δI + σ²I),   δ = max(0, −λ_min(K)),

whose covariance is ⪰ σ²I, with the exact gradient of δ: for a simple λ_min with unit
eigenvector v₀, ∂λ_min = v₀ᵀ (∂K) v₀ (Hellmann–Feynman), so δ = max(0, −v₀ᵀ K v₀) with v₀
held fixed (one `eigh` per step, no gradient through it). This is not `exact_nll`'s
`shift_indefinite`, which stops the gradient of δ.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sslmetric.experiment import loop
from sslmetric.experiment.sink import Progress
from sslmetric.model.distance import distance_matrix
from sslmetric.model.ensemble import EnsembleWeights, ensemble_distance, kernel_from_distance
from sslmetric.model.gp import exact_nll, noise_raw, noise_variance
from sslmetric.model.towers import embed

Log = Callable[[str], None]


# ----------------------------------------------------------------------------------------
# Objective.


def psd_shift(k: jax.Array) -> jax.Array:
  """δ = max(0, −λ_min(K)) with the exact gradient −v₀ᵀ(∂K)v₀ (v₀ from a stopped eigh)."""
  v0 = jnp.linalg.eigh(jax.lax.stop_gradient(k))[1][:, 0]  # unit eigenvector of λ_min
  return jnp.maximum(0.0, -(v0 @ k @ v0))  # λ_min = v₀ᵀ K v₀ (Hellmann–Feynman)


def psd_shifted_nll(*, k: jax.Array, y: jax.Array, noise_var: jax.Array) -> jax.Array:
  """−log N(y | 0, K + δI + σ²I), δ = `psd_shift(K)` (Eq. 6 on the PSD-shifted kernel)."""
  n = k.shape[-1]
  return exact_nll(k=k + psd_shift(k) * jnp.eye(n, dtype=k.dtype), y=y, noise_var=noise_var)


def _nll(objective: str) -> Callable:
  if objective == "psd_shift":
    return psd_shifted_nll
  if objective == "plain":
    return lambda *, k, y, noise_var: exact_nll(k=k, y=y, noise_var=noise_var)
  raise ValueError(f"objective must be 'psd_shift' or 'plain', got {objective!r}")


def w_only_nll(params: dict, d_channels: jax.Array, y: jax.Array, *,
               objective: str = "psd_shift") -> jax.Array:
  """The GP NLL with towers frozen: params {"w", "noise"}, channel distances fixed [n, n, p]."""
  k = kernel_from_distance(ensemble_distance(params["w"], d_channels))  # K = e^(−D/2)
  return _nll(objective)(k=k, y=y, noise_var=noise_variance(params["noise"]).astype(k.dtype))


# Module-level (stable identity), so that jitted L-BFGS steps compile once per shape.
W_ONLY_NLL = {"psd_shift": functools.partial(w_only_nll, objective="psd_shift"),
              "plain": functools.partial(w_only_nll, objective="plain")}


def w_nll_fixed_noise(params: dict, d_channels: jax.Array, y: jax.Array,
                      noise_var: jax.Array) -> jax.Array:
  """psd_shift NLL in w alone (params {"w"}), σ² given: the per-user MLE's objective."""
  k = kernel_from_distance(ensemble_distance(params["w"], d_channels))
  return psd_shifted_nll(k=k, y=y, noise_var=jnp.asarray(noise_var, k.dtype))


def w_only_loss_fn(*, d_channels: jax.Array, y: jax.Array, objective: str = "psd_shift"):
  """loss(params, key) of `w_only_nll` for `loop.train` (key unused: full batch)."""
  return lambda params, key=None: W_ONLY_NLL[objective](params, d_channels, y)


def full_loss_fn(*, inputs: Sequence[jax.Array], y: jax.Array,
                 objective: str = "psd_shift"):
  """loss({"towers", "w", "noise"}, key): the SSL objective (Eq. 6) on all n items."""
  nll = _nll(objective)

  def loss(params, key=None):
    del key
    emb = embed(params["towers"], inputs)  # F_i(x): tuple of [n, h]
    k = kernel_from_distance(distance_matrix(params["w"], emb))  # [n, n]
    return nll(k=k, y=y, noise_var=noise_variance(params["noise"]).astype(k.dtype))

  return loss


# ----------------------------------------------------------------------------------------
# Fitting.


_LBFGS = optax.lbfgs()


@functools.partial(jax.jit, static_argnames=("value_fn",))
def _lbfgs_step(params, state, args: tuple, value_fn: Callable):
  f = lambda p: value_fn(p, *args)  # noqa: E731
  value, grad = optax.value_and_grad_from_state(f)(params, state=state)
  updates, state = _LBFGS.update(grad, state, params, value=value, grad=grad, value_fn=f)
  return optax.apply_updates(params, updates), state, value, optax.tree.norm(grad)


def fit_lbfgs(value_fn: Callable, params, args: tuple = (), *, max_iters: int,
              tol: float = 1e-7) -> tuple:
  """Minimises `value_fn(params, *args)` with optax L-BFGS (zoom line search).

  `value_fn` is a static argument of the jitted step: pass a module-level function (not a
  fresh closure) so that runs of the same shapes share one compilation. Stops after
  `max_iters` iterations or when ‖∇‖ ≤ tol·max(1, |value|).

  Returns:
    (params, {"value", "grad_norm", "iters", "finite"}).
  """
  state = _LBFGS.init(params)
  value, gnorm, it = float("nan"), float("nan"), 0
  for it in range(1, max_iters + 1):
    new_params, new_state, v, g = _lbfgs_step(params, state, args, value_fn)
    value, gnorm = float(v), float(g)
    if not (np.isfinite(value) and np.isfinite(gnorm)):
      return params, {"value": value, "grad_norm": gnorm, "iters": it, "finite": False}
    params, state = new_params, new_state
    if gnorm <= tol * max(1.0, abs(value)):
      break
  value = float(value_fn(params, *args))
  return params, {"value": value, "grad_norm": gnorm, "iters": it,
                  "finite": bool(np.isfinite(value))}


def w_params(h0: float, b0: float, noise_var0: float, p: int, dtype) -> dict:
  """{"w": EnsembleWeights(h = h0 in every channel, b0), "noise": raw σ² = noise_var0}."""
  return {"w": EnsembleWeights(h=jnp.full((p,), h0, dtype), b=jnp.asarray(b0, dtype)),
          "noise": noise_raw(noise_var0, dtype=dtype)}


def fit_w_only(d_channels: jax.Array, y: jax.Array, *, starts: Sequence, noise_var0: float,
               max_iters: int, tol: float) -> tuple:
  """MLE of (w, σ²) with towers frozen (psd_shift objective): L-BFGS from each (h0, b0)
  in `starts`, the lowest NLL kept. Returns (best params, info, the first start's init)."""
  p, dtype = d_channels.shape[-1], d_channels.dtype
  best, best_info = None, None
  for h0, b0 in starts:
    init = w_params(h0, b0, noise_var0, p, dtype)
    params, info = fit_lbfgs(W_ONLY_NLL["psd_shift"], init, (d_channels, y),
                             max_iters=max_iters, tol=tol)
    if info["finite"] and (best_info is None or info["value"] < best_info["value"]):
      best, best_info = params, info
  if best is None:
    raise FloatingPointError("w_only: every L-BFGS start ended non-finite")
  best_info = dict(best_info, starts=[list(map(float, s)) for s in starts])
  return best, best_info, w_params(*starts[0], noise_var0, p, dtype)


def fit_adam(loss: Callable, params, *, name: str, num_steps: int, learning_rate: float,
             log: Log, log_every_seconds: float) -> tuple:
  """Adam through `loop.train` (no checkpoints); a NaN loss ends the fit, reported."""
  progress = Progress(name, num_steps, log, every_seconds=log_every_seconds)
  last = {"step": 0, "loss": float("nan")}

  def cb(step, value):
    last.update(step=step, loss=value)
    progress.update(step, f"loss={value:.4f}")

  opt = optax.chain(optax.clip_by_global_norm(10.0), optax.adam(learning_rate))
  try:
    params, _, _ = loop.train(name=name, loss_fn=loss, params=params, optimizer=opt,
                              num_steps=num_steps, key=jax.random.PRNGKey(0), progress=cb)
  except FloatingPointError as e:
    return None, {"finite": False, "failed_at_step": last["step"] + 1, "error": str(e)[:300]}
  return params, {"finite": True, "value": float(loss(params)), "iters": num_steps}
