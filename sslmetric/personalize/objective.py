"""The per-user GP objective ℓ_u(w) (Eq. 8) with the towers frozen.

For user u with rated items x_1..x_n and centred ratings y ∈ R^n, the towers are
frozen, so the per-channel distances D_i(x_a, x_b) (Eq. 1) are fixed numbers, computed
once per user (:func:`user_channel_distances`). Only w = (h, b) ∈ R^(p+1) is free:

    z_ab = Σ_i h_i D_i(x_a, x_b) + b,  s = sigmoid(z),  K_ab = exp(−s_ab/2)  (Eq. 7, 5)
    Σ = K + σ² I                          (σ² fixed, from the SSL fit)
    ℓ_u(w) = ½ yᵀ Σ⁻¹ y + ½ log|Σ| + (n/2) log 2π.                         (Eq. 8)

Users are padded to a static length n_pad with a boolean mask so that one compiled
function serves every user: padded rows/columns of Σ are the identity, padded
residuals are 0 (so they add 0 to the quadratic form and to log|Σ|), and the constant
uses the true n = Σ mask.

Implementations, all with the same value:

* :func:`user_nll_autodiff` — plain JAX (Cholesky, triangular solves); derivatives by
  autodiff. The reference.
* :func:`user_nll` / :func:`user_nll_and_grad` — hand-derived first and second
  derivatives (a ``jax.custom_jvp``; forward and reverse mode, any order).
* :func:`user_nll_and_grad_rev` — the same as a ``jax.custom_vjp`` (reverse mode only):
  the fastest exact meta-gradient, used by default ("hand" in :data:`OBJECTIVES`).

With θ = (h, b), Φ_i = D_i for i < p and Φ_p = 1 (all ones), S = Σ⁻¹, α = S y,
E = ∂K/∂z = −½ K s(1 − s) and F = ∂²K/∂z²:

    ∂ℓ/∂θ_i = Σ_ab G_ab E_ab Φ_i,ab,                G = ∂ℓ/∂Σ = ½ (S − α αᵀ),
    (H v)_i = Σ_ab X_ab Φ_i,ab,                      dz = Σ_j v_j Φ_j,  dΣ = E ⊙ dz,
    X = ½ (−S dΣ S + u αᵀ + α uᵀ) ⊙ E + G ⊙ F ⊙ dz,  u = S dΣ α.

S and log|Σ| come from :func:`spd_inverse_logdet`, a block recursion whose O(n³) work
is matrix products (XLA:CPU runs those an order of magnitude faster than batched
Cholesky factors and triangular solves); H v is two n×n products and no factorisation.
So the exact meta-gradient, reverse mode through the unrolled inner loop, never
differentiates a Cholesky factor or a triangular solve (benchmarks/meta_step.py).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sslmetric.data.types import data_error
from sslmetric.model.ensemble import EnsembleWeights


class UserData(NamedTuple):
  """One user's frozen-tower data, padded to n_pad items (leading batch axes allowed).

  Attributes:
    d: [p, n_pad, n_pad] per-channel distances D_i among the user's items, channel-first
      (one contiguous n_pad×n_pad matrix per channel); 0 in padding.
    y: [n_pad] centred ratings; 0 in padding.
    mask: bool [n_pad], True for the user's real items.
  """
  d: jax.Array  # [p, n_pad, n_pad]
  y: jax.Array  # [n_pad]
  mask: jax.Array  # bool [n_pad]


def default_jitter(dtype) -> float:
  """Diagonal jitter that scales with the dtype: 100·eps (2e-14 in f64, 1e-5 in f32)."""
  return 100.0 * float(jnp.finfo(dtype).eps)


# --------------------------------------------------------------------------------------
# Building the per-user data (once, from frozen tower embeddings).


def user_channel_distances(embeddings: Sequence[jax.Array], item_idx: jax.Array,
                           mask: jax.Array,
                           lam: Optional[Sequence[jax.Array]] = None) -> jax.Array:
  """Per-channel distances among one user's items (Eq. 1), padded and masked.

      D_i(a, b) = (F_i(a) − F_i(b))ᵀ Λ_i (F_i(a) − F_i(b))

  Args:
    embeddings: p arrays, channel i of shape [n_items_total, e_i]: the frozen tower
      outputs F_i of every item (computed once for the catalogue).
    item_idx: int [n_pad], the user's items (any valid index in padded slots).
    mask: bool [n_pad], True for real items.
    lam: optional p arrays [e_i], the diagonals of Λ_i (default Λ_i = I).

  Returns:
    [p, n_pad, n_pad] distances, exactly 0 on the diagonal and wherever a or b is
    padding.
  """
  pair = mask[:, None] & mask[None, :]  # [n_pad, n_pad]
  out = []
  for i, emb in enumerate(embeddings):
    f = jnp.take(emb, item_idx, axis=0)  # F_i(x_a): [n_pad, e_i]
    diff = f[:, None, :] - f[None, :, :]  # F_i(a) − F_i(b): [n_pad, n_pad, e_i]
    wts = jnp.ones(f.shape[-1], f.dtype) if lam is None else lam[i]
    out.append(jnp.where(pair, jnp.sum(diff * diff * wts, axis=-1), 0))
  return jnp.stack(out, axis=0)


def pad_users(items: Sequence[np.ndarray], ratings: Sequence[np.ndarray], *,
              n_pad: int, center: bool = True, dtype=np.float64,
              source: str = "pad_users"):
  """Pads ragged per-user (item, rating) lists to a static length, centring ratings.

  Args:
    items: B int arrays, user b's item indices.
    ratings: B float arrays, the matching ratings.
    n_pad: the static length; every user must have 1..n_pad items.
    center: subtract each user's mean rating (over its real items).
    dtype: dtype of the returned ratings.
    source: where the lists came from, for error messages.

  Returns:
    (item_idx int32 [B, n_pad] (0 in padding), y [B, n_pad] (0 in padding),
    mask bool [B, n_pad]).

  Raises:
    DataError: a user with no items, more than n_pad items, or mismatched lengths.
  """
  if len(items) != len(ratings):
    raise data_error(source, None, "ratings",
                     f"{len(ratings)} rating lists for {len(items)} item lists",
                     "pass one rating array per user")
  b = len(items)
  item_idx = np.zeros((b, n_pad), np.int32)
  y = np.zeros((b, n_pad), dtype)
  mask = np.zeros((b, n_pad), bool)
  for u, (it, r) in enumerate(zip(items, ratings)):
    it, r = np.asarray(it), np.asarray(r, np.float64)
    if len(it) != len(r):
      raise data_error(source, None, "ratings",
                       f"user {u}: {len(r)} ratings for {len(it)} items",
                       "pass one rating per item")
    if not 1 <= len(it) <= n_pad:
      raise data_error(source, None, "items",
                       f"user {u} has {len(it)} items, outside 1..n_pad={n_pad}",
                       "raise n_pad, or split/subsample that user's items explicitly")
    item_idx[u, :len(it)] = it
    y[u, :len(it)] = r - r.mean() if center else r
    mask[u, :len(it)] = True
  return item_idx, y, mask


def make_user_data(embeddings: Sequence[jax.Array], item_idx: jax.Array, y: jax.Array,
                   mask: jax.Array,
                   lam: Optional[Sequence[jax.Array]] = None) -> UserData:
  """A batch of :class:`UserData` from padded arrays [B, n_pad] (distances once).

  The per-user :func:`user_channel_distances` is vmapped here over the user axis.
  """
  dist = jax.vmap(lambda i, m: user_channel_distances(embeddings, i, m, lam))
  return UserData(d=dist(item_idx, mask), y=jnp.asarray(y), mask=jnp.asarray(mask))


# --------------------------------------------------------------------------------------
# The objective.


def _theta(w: EnsembleWeights) -> jax.Array:
  """θ = (h, b) flattened: [p + 1]."""
  return jnp.concatenate([w.h, w.b[None]])


def _unflatten(theta: jax.Array) -> EnsembleWeights:
  return EnsembleWeights(h=theta[:-1], b=theta[-1])


def _sigma(k: jax.Array, mask: jax.Array, noise_var, jitter) -> jax.Array:
  """Σ = K + (σ² + jitter) I on real items, identity on padded rows/columns.

  `k` must already be 0 outside the real×real block.
  """
  diag = jnp.where(mask, noise_var + jitter, 1.0).astype(k.dtype)  # [n_pad]
  return k + jnp.diag(diag)


def _log_2pi_const(mask: jax.Array, dtype) -> jax.Array:
  """(n/2) log 2π with the true n = Σ mask (the padding's constant is not added)."""
  return 0.5 * jnp.sum(mask).astype(dtype) * math.log(2 * math.pi)


def _resolve_jitter(jitter, dtype):
  return default_jitter(dtype) if jitter is None else jitter


def user_nll_autodiff(w: EnsembleWeights, user: UserData, *, noise_var,
                      jitter: Optional[float] = None) -> jax.Array:
  """ℓ_u(w) (Eq. 8) in plain JAX; derivatives by autodiff through Cholesky. Unbatched.

  Args:
    w: ensemble weights (h [p], b []).
    user: one user's :class:`UserData` (no batch axis).
    noise_var: σ² (fixed, from the SSL fit).
    jitter: added to σ² on the diagonal; default :func:`default_jitter` of the dtype.

  Returns:
    [] the negative log marginal likelihood.
  """
  dtype = user.d.dtype
  jitter = _resolve_jitter(jitter, dtype)
  pair = user.mask[:, None] & user.mask[None, :]
  z = _combine(user.d, w.h) + w.b  # z = Σ_i h_i D_i + b: [n, n]
  k = jnp.where(pair, jnp.exp(-0.5 * jax.nn.sigmoid(z)), 0)  # K = exp(−sigmoid(z)/2)
  chol = jnp.linalg.cholesky(_sigma(k, user.mask, noise_var, jitter))  # Σ = L Lᵀ
  alpha = jax.scipy.linalg.cho_solve((chol, True), user.y)  # α = Σ⁻¹ y
  return (0.5 * user.y @ alpha  # ½ yᵀ Σ⁻¹ y
          + jnp.sum(jnp.log(jnp.diagonal(chol)))  # ½ log|Σ| = Σ log L_aa
          + _log_2pi_const(user.mask, dtype))


def _combine(d: jax.Array, h: jax.Array) -> jax.Array:
  """Σ_i h_i D_i for channel-first d [p, n, n]: one fused elementwise pass over d."""
  return sum(h[i] * d[i] for i in range(d.shape[0]))


class _Terms(NamedTuple):
  """Quantities at θ shared by ℓ, ∇ℓ and H v (all [n, n] unless noted)."""
  value: jax.Array  # []
  grad: jax.Array  # [p + 1]
  s_inv: jax.Array  # S = Σ⁻¹ (identity in padding)
  alpha: jax.Array  # [n] α = S y
  e: jax.Array  # E = ∂K/∂z (0 outside the real block)
  gf: jax.Array  # G ⊙ F, F = ∂²K/∂z²
  g: jax.Array  # G = ½ (S − α αᵀ)


def _contract(x: jax.Array, d: jax.Array) -> jax.Array:
  """(Σ_ab X_ab D_i,ab for i < p, Σ_ab X_ab) = ∇_θ Σ_ab X_ab z_ab: [p + 1]."""
  p = d.shape[0]
  # One [p, n²]·[n²] matrix-vector product (d is channel-first, so no transpose).
  return jnp.concatenate([d.reshape(p, -1) @ x.reshape(-1), jnp.sum(x)[None]])


def spd_inverse_logdet(a: jax.Array, *, leaf: int = 64):
  """(A⁻¹, log|A|) of a symmetric positive-definite A [n, n] by block recursion.

  With A = [[A₁₁, A₂₁ᵀ], [A₂₁, A₂₂]] and Schur complement Q = A₂₂ − A₂₁ A₁₁⁻¹ A₂₁ᵀ
  (SPD whenever A is):

      W = A₁₁⁻¹ A₂₁ᵀ,   A⁻¹ = [[A₁₁⁻¹ + W Q⁻¹ Wᵀ, −W Q⁻¹], [−Q⁻¹ Wᵀ, Q⁻¹]],
      log|A| = log|A₁₁| + log|Q|,

  recursing on A₁₁ and Q down to blocks of at most `leaf` rows, which use a Cholesky
  factorisation. All the O(n³) work (≈ 4n³/3 flops) is matrix products, which XLA:CPU
  runs an order of magnitude faster than batched Cholesky factors and triangular
  solves (benchmarks/meta_step.py), and which need no LAPACK call under `vmap`.
  A non-SPD input gives NaN (from the leaf Cholesky), as a Cholesky would.
  """
  n = a.shape[-1]
  if n <= leaf:
    chol = jnp.linalg.cholesky(a)  # A = L Lᵀ
    inv = jax.scipy.linalg.cho_solve((chol, True), jnp.eye(n, dtype=a.dtype))
    return inv, 2 * jnp.sum(jnp.log(jnp.diagonal(chol)))  # log|A| = 2 Σ log L_ii
  k = n // 2
  a11, a21, a22 = a[:k, :k], a[k:, :k], a[k:, k:]
  a11_inv, logdet11 = spd_inverse_logdet(a11, leaf=leaf)
  w = a11_inv @ a21.T  # W = A₁₁⁻¹ A₂₁ᵀ: [k, n−k]
  q = a22 - a21 @ w  # Q = A₂₂ − A₂₁ W
  q = 0.5 * (q + q.T)  # keep the Schur complement exactly symmetric
  q_inv, logdet_q = spd_inverse_logdet(q, leaf=leaf)
  x12 = -w @ q_inv  # (A⁻¹)₁₂ = −W Q⁻¹
  x11 = a11_inv - x12 @ w.T  # (A⁻¹)₁₁ = A₁₁⁻¹ + W Q⁻¹ Wᵀ
  inv = jnp.concatenate([jnp.concatenate([x11, x12], axis=1),
                         jnp.concatenate([x12.T, q_inv], axis=1)], axis=0)
  return inv, logdet11 + logdet_q


def _terms(theta, d, y, mask, noise_var, jitter) -> _Terms:
  h, b = theta[:-1], theta[-1]
  dtype = d.dtype
  pair = mask[:, None] & mask[None, :]
  s = jax.nn.sigmoid(_combine(d, h) + b)  # s = sigmoid(Σ_i h_i D_i + b)
  k = jnp.where(pair, jnp.exp(-0.5 * s), 0)  # K = exp(−s/2), real block only
  e = -0.5 * k * s * (1 - s)  # E = ∂K/∂z = −½ K s (1 − s)
  f = e * (1 - 2 * s - 0.5 * s * (1 - s))  # F = ∂²K/∂z² = E (1 − 2s − ½ s(1 − s))
  s_inv, logdet = spd_inverse_logdet(_sigma(k, mask, noise_var, jitter))  # Σ⁻¹, log|Σ|
  s_inv = 0.5 * (s_inv + s_inv.T)  # symmetrise rounding
  alpha = s_inv @ y  # α = Σ⁻¹ y
  value = 0.5 * y @ alpha + 0.5 * logdet + _log_2pi_const(mask, dtype)
  g = 0.5 * (s_inv - jnp.outer(alpha, alpha))  # G = ∂ℓ/∂Σ = ½ (Σ⁻¹ − α αᵀ)
  grad = _contract(g * e, d)  # ∂ℓ/∂θ_i = Σ_ab G_ab E_ab Φ_i,ab
  return _Terms(value, grad, s_inv, alpha, e, g * f, g)


def _hvp(t: _Terms, d: jax.Array, v: jax.Array) -> jax.Array:
  """H v for the Hessian of ℓ at θ, v [p + 1] (linear in v; 4n³ flops)."""
  dz = _combine(d, v[:-1]) + v[-1]  # dz = Σ_j v_j Φ_j
  dsig = t.e * dz  # dΣ = E ⊙ dz
  u = t.s_inv @ (dsig @ t.alpha)  # u = S dΣ α  (= −dα)
  c = t.s_inv @ (dsig @ t.s_inv)  # C = S dΣ S  (= −dS)
  x = 0.5 * (-c + jnp.outer(u, t.alpha) + jnp.outer(t.alpha, u)) * t.e + t.gf * dz
  return _contract(x, d)  # (H v)_i = Σ_ab X_ab Φ_i,ab


@jax.custom_jvp
def _value_and_grad(theta, d, y, mask, noise_var, jitter):
  t = _terms(theta, d, y, mask, noise_var, jitter)
  return t.value, t.grad


@_value_and_grad.defjvp
def _value_and_grad_jvp(primals, tangents):
  theta, d, y, mask, noise_var, jitter = primals
  v = tangents[0]
  # Only θ is differentiated: D, y, mask, σ² are constants of the personalisation
  # problem (the public wrappers stop their gradients; see _constants).
  t = _terms(theta, d, y, mask, noise_var, jitter)
  return (t.value, t.grad), (t.grad @ v, _hvp(t, d, v))


def _constants(user: UserData, noise_var, jitter):
  """The user's data and σ² as constants (no derivative flows into them)."""
  dtype = user.d.dtype
  sg = jax.lax.stop_gradient
  return (sg(user.d), sg(user.y.astype(dtype)), user.mask,
          sg(jnp.asarray(noise_var, dtype)),
          jnp.asarray(_resolve_jitter(jitter, dtype), dtype))


def user_nll_and_grad(w: EnsembleWeights, user: UserData, *, noise_var,
                      jitter: Optional[float] = None):
  """(ℓ_u(w), ∇_w ℓ_u(w)) with hand-derived derivatives; differentiable twice in w.

  The JVP of the gradient is the exact Hessian-vector product H v (module docstring),
  so `jax.grad` of anything built from this function (the unrolled inner loop) is the
  exact second-order meta-gradient. Unbatched.

  Args:
    w: ensemble weights (h [p], b []).
    user: one user's :class:`UserData` (no batch axis). A constant: no gradient flows
      into it (differentiate :func:`user_nll_autodiff` for derivatives w.r.t. data).
    noise_var: σ², a constant likewise.
    jitter: added to σ² on the diagonal; default :func:`default_jitter` of the dtype.

  Returns:
    (value [], gradient as EnsembleWeights(h [p], b [])).
  """
  theta = _theta(w).astype(user.d.dtype)
  value, grad = _value_and_grad(theta, *_constants(user, noise_var, jitter))
  return value, _unflatten(grad)


def user_nll(w: EnsembleWeights, user: UserData, *, noise_var,
             jitter: Optional[float] = None) -> jax.Array:
  """ℓ_u(w) (Eq. 8), equal to :func:`user_nll_autodiff`, with hand-derived derivatives.

  Args and returns as :func:`user_nll_and_grad` (the value only).
  """
  return user_nll_and_grad(w, user, noise_var=noise_var, jitter=jitter)[0]


def user_hvp(w: EnsembleWeights, user: UserData, v: EnsembleWeights, *, noise_var,
             jitter: Optional[float] = None) -> EnsembleWeights:
  """H v: the Hessian of ℓ_u at w times a direction v (hand-derived, 4n³ flops)."""
  consts = _constants(user, noise_var, jitter)
  t = _terms(_theta(w).astype(user.d.dtype), *consts)
  return _unflatten(_hvp(t, consts[0], _theta(v).astype(user.d.dtype)))


@jax.custom_vjp
def _value_and_grad_rev(theta, d, y, mask, noise_var, jitter):
  t = _terms(theta, d, y, mask, noise_var, jitter)
  return t.value, t.grad


def _value_and_grad_rev_fwd(theta, d, y, mask, noise_var, jitter):
  t = _terms(theta, d, y, mask, noise_var, jitter)
  res = (t._replace(value=None, g=None), d, y, mask, noise_var, jitter)
  return (t.value, t.grad), res


def _value_and_grad_rev_bwd(res, cts):
  t, d, y, mask, noise_var, jitter = res
  value_ct, grad_ct = cts
  # VJP of θ ↦ (ℓ, ∇ℓ): ℓ̄ ∇ℓ + Hᵀ ḡ = ℓ̄ ∇ℓ + H ḡ (the Hessian is symmetric), computed
  # with the same plain matrix products as the forward H v (no transposed operands).
  theta_ct = value_ct * t.grad + _hvp(t, d, grad_ct)
  zeros = jax.tree.map(jnp.zeros_like, (d, y, noise_var, jitter))
  mask_ct = np.zeros(mask.shape, jax.dtypes.float0)
  return (theta_ct, zeros[0], zeros[1], mask_ct, zeros[2], zeros[3])


_value_and_grad_rev.defvjp(_value_and_grad_rev_fwd, _value_and_grad_rev_bwd)


def user_nll_and_grad_rev(w: EnsembleWeights, user: UserData, *, noise_var,
                          jitter: Optional[float] = None):
  """:func:`user_nll_and_grad` for reverse mode only (a `jax.custom_vjp`).

  Same values. Its VJP is ℓ̄ ∇ℓ + H ḡ written directly (H symmetric) rather than
  JAX's transpose of the H v map, which saves the matrix products with a transposed
  operand that XLA:CPU runs slowly. `jax.grad` works through it (to any depth of
  reverse mode); forward mode (`jax.jvp`, `jax.hessian`) does not — use
  :func:`user_nll_and_grad` for that.
  """
  theta = _theta(w).astype(user.d.dtype)
  value, grad = _value_and_grad_rev(theta, *_constants(user, noise_var, jitter))
  return value, _unflatten(grad)


OBJECTIVES = ("hand", "hand_jvp", "autodiff")


def nll_and_grad_fn(objective: str):
  """The (value, grad) function of ℓ_u for `objective` in :data:`OBJECTIVES`.

  * "hand": :func:`user_nll_and_grad_rev` (hand-derived derivatives, reverse mode
    only; the fastest exact meta-gradient).
  * "hand_jvp": :func:`user_nll_and_grad` (hand-derived, forward and reverse mode).
  * "autodiff": `jax.value_and_grad` of :func:`user_nll_autodiff` (the reference;
    its second order differentiates Cholesky factors and triangular solves).
  """
  if objective == "hand":
    return user_nll_and_grad_rev
  if objective == "hand_jvp":
    return user_nll_and_grad
  if objective == "autodiff":
    def f(w, user, *, noise_var, jitter=None):
      return jax.value_and_grad(user_nll_autodiff)(w, user, noise_var=noise_var,
                                                   jitter=jitter)
    return f
  raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")


def hvp_fn(objective: str):
  """H v of ℓ_u for `objective`: `f(w, user, v, *, noise_var, jitter=None)`.

  "hand" and "hand_jvp": :func:`user_hvp`; "autodiff": forward-over-reverse autodiff.
  """
  if objective in ("hand", "hand_jvp"):
    return user_hvp
  if objective == "autodiff":
    def f(w, user, v, *, noise_var, jitter=None):
      grad = jax.grad(user_nll_autodiff)
      return jax.jvp(lambda a: grad(a, user, noise_var=noise_var, jitter=jitter),
                     (w,), (v,))[1]
    return f
  raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
