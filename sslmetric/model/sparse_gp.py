"""Sparse GP on a supporting set of m training items (METHOD.md §2, paper App. G).

The kernel K_nn is replaced by the Nyström form Q = K_nm K_mm⁻¹ K_mn, giving the
subset-of-regressors / DTC marginal likelihood

    -log p(y) = ½ yᵀ(Q + σ²I)⁻¹y + ½ log|Q + σ²I| + (n/2) log 2π,

and, optionally, Titsias' (2009) variational bound, whose negation adds a trace term:

    -ELBO = -log N(y | 0, Q + σ²I) + tr(K_nn - Q) / (2σ²).

Both cost O(n m²) through one m×m Cholesky K_mm = L Lᵀ and Woodbury. With
A = L⁻¹K_mn [m, n] (so Q = AᵀA) and B = I + AAᵀ/σ² = L_B L_Bᵀ:

    log|Q + σ²I|     = n log σ² + 2 Σ log diag L_B
    yᵀ(Q + σ²I)⁻¹y   = yᵀy/σ² - cᵀc,           c = L_B⁻¹ A y / σ²
    tr(K_nn - Q)     = Σ diag K_nn - tr(AAᵀ).

Everything depends on the data only through the sums S = AAᵀ [m, m], A y [m], yᵀy and
Σ diag K_nn (`SparseStats`), which `blocked_sparse_stats` accumulates over row blocks
with a checkpointed `lax.scan`: neither an n×n nor (under `grad`) an n×m×p array is
ever held, only one block of rows (n = 160,000, m = 256 fits on a laptop CPU).

Prediction (DTC, as in Titsias and GPJax), with A_* = L⁻¹K_m* [m, t]:

    mean = A_*ᵀ L_B⁻ᵀ c,    var = k_** - ‖A_*‖²_col + ‖L_B⁻¹A_*‖²_col  (+ σ² if asked).

The supporting set is a subset of the training items (its embeddings come from the
towers). `select_inducing` (uniform, seeded) is the default; `select_inducing_pivoted`
(greedy or randomly pivoted Cholesky of K) is the alternative. See their docstrings.

This kernel is not PSD in general (see distance.py), and an indefinite K_mm would make
Q indefinite and the Cholesky fail. K_mm is therefore factorised as K_mm + δI with
δ = 2·max(0, -λ_min(K_mm)) + jitter (`inducing_cholesky`; one m×m eigvalsh, no gradient):
plain jitter when K_mm is PD, a spectrum shift when it is not (random tower embeddings
at initialisation already give λ_min(K_mm) < 0 for m of a few tens). With δ > jitter,
sparse and exact no longer coincide at m = n.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from sslmetric.model.distance import (indefinite_shift, jitter_scale, kernel_diag, kernel_matrix,
                                      pad_rows)
from sslmetric.model.ensemble import EnsembleWeights

_LOG_2PI = float(np.log(2.0 * np.pi))
_HI = jax.lax.Precision.HIGHEST  # no TF32 in the GP algebra on GPUs


class SparseStats(NamedTuple):
  """Sufficient statistics of the training data for the sparse GP (noise-free)."""
  chol_mm: jax.Array  # L [m, m], K_mm + δI = L Lᵀ (see inducing_cholesky)
  aat: jax.Array  # AAᵀ [m, m], A = L⁻¹K_mn
  ay: jax.Array  # A y [m]
  yy: jax.Array  # yᵀy []
  trace_k: jax.Array  # Σ_j k(x_j, x_j) []
  n: jax.Array  # number of (unmasked) training points []


def inducing_cholesky(k_mm: jax.Array) -> jax.Array:
  """L with K_mm + δI = L Lᵀ, δ = 2·max(0, -λ_min(K_mm)) + ε·mean(diag K_mm).

  ε = `distance.jitter_scale(dtype)`; δ is held constant under `grad`. For a PD K_mm
  this is the usual jitter. For an indefinite one, an eigenvalue λ < 0 of K_mm enters
  Q = K_nm (K_mm + δI)⁻¹ K_mn (at m = n) as λ²/(λ + δ) ∈ [0, |λ|]: Q stays PSD and no
  larger than |K| (a shift of only |λ_min| would blow that direction up to λ²/ε).
  """
  dt = k_mm.dtype
  eps = jitter_scale(dt) * jax.lax.stop_gradient(jnp.mean(jnp.diagonal(k_mm)))
  delta = 2.0 * indefinite_shift(k_mm) + eps
  return jnp.linalg.cholesky(k_mm + delta * jnp.eye(k_mm.shape[0], dtype=dt))


def _block_stats(chol_mm: jax.Array, k_nm: jax.Array, y: jax.Array, k_diag: jax.Array,
                 mask: jax.Array) -> tuple:
  """(AAᵀ, Ay, yᵀy, Σ diag K, count) of one block of rows; masked rows contribute 0."""
  k_nm = jnp.where(mask[:, None], k_nm, 0.0)  # padded rows of K_nm := 0
  y = jnp.where(mask, y, 0.0)
  a = solve_triangular(chol_mm, k_nm.T, lower=True)  # A = L⁻¹K_mn: [m, b]
  return (jnp.matmul(a, a.T, precision=_HI),  # AAᵀ
          jnp.matmul(a, y, precision=_HI),  # A y
          jnp.sum(y * y),  # yᵀy
          jnp.sum(jnp.where(mask, k_diag, 0.0)),  # Σ k(x, x)
          jnp.sum(mask.astype(y.dtype)))  # n


def sparse_stats(*, k_nm: jax.Array, k_mm: jax.Array, k_diag: jax.Array, y: jax.Array,
                 mask: Optional[jax.Array] = None) -> SparseStats:
  """`SparseStats` from an explicit K_nm [n, m], K_mm [m, m], diag K_nn [n], y [n].

  `mask` [n] (bool) marks valid rows; masked rows are ignored (treated as absent).
  """
  mask = jnp.ones(y.shape, bool) if mask is None else jnp.asarray(mask, bool)
  chol = inducing_cholesky(k_mm)
  return SparseStats(chol, *_block_stats(chol, k_nm, y, k_diag, mask))


def blocked_sparse_stats(*, k_mm: jax.Array, k_rows: Callable, xs, y: jax.Array,
                         k_diag: jax.Array, mask: Optional[jax.Array] = None,
                         block_size: int = 4096) -> SparseStats:
  """`SparseStats` accumulated over row blocks, K_nm never held whole.

  Args:
    k_mm: [m, m] kernel of the supporting set.
    k_rows: maps a block of `xs` (leading axis `block_size`) to its K rows [block, m].
    xs: pytree of per-item inputs with leading axis n (e.g. the embeddings tuple).
    y: [n] targets. k_diag: [n] diag K_nn. mask: optional [n] bool of valid rows.
    block_size: rows per block (static). Memory is O(block_size · m · p).
  """
  n = y.shape[0]
  mask = jnp.ones((n,), bool) if mask is None else jnp.asarray(mask, bool)
  blocks, _, pad_mask = pad_rows((xs, y, k_diag, mask), block_size)
  chol = inducing_cholesky(k_mm)

  @jax.checkpoint  # backward pass recomputes each block: O(block · m) residuals only
  def body(carry, blk):
    x_b, y_b, kd_b, m_b, valid_b = blk
    part = _block_stats(chol, k_rows(x_b), y_b, kd_b, m_b & valid_b)
    return tuple(c + p for c, p in zip(carry, part)), None

  m = k_mm.shape[0]
  dt = k_mm.dtype
  zero = (jnp.zeros((m, m), dt), jnp.zeros((m,), dt), jnp.zeros((), dt),
          jnp.zeros((), dt), jnp.zeros((), dt))
  x_bl, y_bl, kd_bl, m_bl = blocks
  sums, _ = jax.lax.scan(body, zero, (x_bl, y_bl, kd_bl, m_bl, pad_mask))
  return SparseStats(chol, *sums)


def _woodbury(stats: SparseStats, noise_var: jax.Array) -> tuple:
  """L_B and c: B = I + AAᵀ/σ² = L_B L_Bᵀ, c = L_B⁻¹ A y / σ²."""
  m = stats.aat.shape[0]
  b = jnp.eye(m, dtype=stats.aat.dtype) + stats.aat / noise_var  # B = I + AAᵀ/σ²
  chol_b = jnp.linalg.cholesky(b)  # B = L_B L_Bᵀ
  c = solve_triangular(chol_b, stats.ay, lower=True) / noise_var  # c = L_B⁻¹Ay/σ²
  return chol_b, c


def sparse_nll_from_stats(stats: SparseStats, noise_var: jax.Array, *,
                          titsias: bool = False) -> jax.Array:
  """-log N(y | 0, Q + σ²I) (DTC), or Titsias' -ELBO when `titsias` (see module doc)."""
  noise_var = jnp.asarray(noise_var, stats.aat.dtype)
  chol_b, c = _woodbury(stats, noise_var)
  logdet = stats.n * jnp.log(noise_var) + 2.0 * jnp.sum(
      jnp.log(jnp.diagonal(chol_b)))  # log|Q + σ²I| = n log σ² + log|B|
  quad = stats.yy / noise_var - jnp.dot(c, c, precision=_HI)  # yᵀ(Q + σ²I)⁻¹y
  nll = 0.5 * (quad + logdet + stats.n * _LOG_2PI)
  if titsias:
    nll = nll + 0.5 * (stats.trace_k - jnp.trace(stats.aat)) / noise_var  # tr(K - Q)/2σ²
  return nll


def sparse_nll(*, k_nm: jax.Array, k_mm: jax.Array, k_diag: jax.Array, y: jax.Array,
               noise_var: jax.Array, titsias: bool = False,
               mask: Optional[jax.Array] = None) -> jax.Array:
  """Sparse GP negative log marginal likelihood (DTC) or -ELBO (Titsias), O(n m²).

  Args:
    k_nm: [n, m] K(X, Z). k_mm: [m, m] K(Z, Z). k_diag: [n] k(x, x) (Titsias only).
    y: [n] targets. noise_var: σ² > 0. titsias: add tr(K_nn - Q)/(2σ²).
    mask: optional [n] bool; masked rows are absent (n counts valid rows only).
  """
  stats = sparse_stats(k_nm=k_nm, k_mm=k_mm, k_diag=k_diag, y=y, mask=mask)
  return sparse_nll_from_stats(stats, noise_var, titsias=titsias)


def sparse_predict_from_stats(stats: SparseStats, noise_var: jax.Array, *,
                              k_tm: jax.Array, k_test_diag: jax.Array,
                              include_noise: bool = False) -> tuple:
  """DTC predictive mean [t] and variance [t] at t test points, K(test, Z) = `k_tm`.

  The variance is that of the latent f (plus σ² when `include_noise`).
  """
  noise_var = jnp.asarray(noise_var, stats.aat.dtype)
  chol_b, c = _woodbury(stats, noise_var)
  a_t = solve_triangular(stats.chol_mm, k_tm.T, lower=True)  # A_* = L⁻¹K_m*: [m, t]
  b_t = solve_triangular(chol_b, a_t, lower=True)  # L_B⁻¹A_*: [m, t]
  mean = jnp.matmul(b_t.T, c, precision=_HI)  # A_*ᵀ L_B⁻ᵀ c
  var = k_test_diag - jnp.sum(a_t * a_t, axis=0) + jnp.sum(b_t * b_t, axis=0)
  return mean, (var + noise_var if include_noise else var)


def sparse_predict(*, k_nm: jax.Array, k_mm: jax.Array, y: jax.Array, noise_var: jax.Array,
                   k_tm: jax.Array, k_test_diag: jax.Array,
                   mask: Optional[jax.Array] = None,
                   include_noise: bool = False) -> tuple:
  """Sparse (DTC) predictive mean and variance from explicit kernel matrices.

  Args: as `sparse_nll`, plus k_tm: [t, m] K(test, Z), k_test_diag: [t] k(x*, x*).
  Returns: (mean [t], var [t]).
  """
  stats = sparse_stats(k_nm=k_nm, k_mm=k_mm, k_diag=jnp.zeros_like(y), y=y, mask=mask)
  return sparse_predict_from_stats(stats, noise_var, k_tm=k_tm, k_test_diag=k_test_diag,
                                   include_noise=include_noise)


def select_inducing(key: jax.Array, n: int, m: int) -> jax.Array:
  """The default supporting set: m distinct training items drawn uniformly (seeded).

  Why the default: it is cheap, reproducible from the key, spreads the set over the
  training items in proportion to where they are, and does not depend on the current
  kernel, so the sparse objective stays one smooth function of the parameters during
  training (a kernel-driven set would change, and the loss jump, as the towers move).
  On small clustered examples, randomly pivoted Cholesky (`select_inducing_pivoted`)
  lowers Titsias' trace term by only ~5-20% against a uniform draw.

  Returns:
    int32 [m] sorted distinct indices into 0..n-1.
  """
  if not 1 <= m <= n:
    raise ValueError(f"need 1 <= m <= n for a supporting set, got m={m}, n={n}")
  idx = jax.random.choice(key, n, (m,), replace=False)
  return jnp.sort(idx).astype(jnp.int32)


def select_inducing_pivoted(w: EnsembleWeights, emb: Sequence[jax.Array], m: int, *,
                            key: Optional[jax.Array] = None,
                            lam: Optional[Sequence[jax.Array]] = None) -> jax.Array:
  """A supporting set by pivoted Cholesky of K, O(n m² + n m p), K never n×n.

  Each step adds a pivot item x_p and updates the residual variances
  r(x) = k(x, x) - Q(x, x) of all items (one kernel column per step):

  * `key=None` (greedy): p = argmax r, the worst-approximated item: a kernel-space
    farthest-point rule that keeps max_x r(x) small (coverage of outlying items).
    Deterministic; ties (the first step, where diag K is constant) go to the lowest
    index. It does *not* minimise Titsias' trace term Σ_x r(x), and on clustered data
    its trace is often worse than a uniform draw's.
  * `key` given (randomly pivoted Cholesky, Chen, Epperly, Tropp & Webber 2022): p is
    drawn with probability ∝ r(x), the kernel-space analogue of k-means++ seeding; its
    expected trace error is near that of the best rank-m approximation.

  Use it with fixed parameters (e.g. to pick the set once after pre-training);
  `select_inducing` is the default.

  Args:
    w: ensemble weights. emb: tuple of [n, w_i] embeddings. m: set size (≤ n).
    key: PRNG key for random pivoting; None for the greedy rule.
    lam: optional Λ diagonals as in `distance.channel_distances`.

  Returns:
    int32 [m] distinct indices in the order chosen.
  """
  emb = tuple(jnp.asarray(e) for e in emb)
  n = emb[0].shape[0]
  if not 1 <= m <= n:
    raise ValueError(f"need 1 <= m <= n for a supporting set, got m={m}, n={n}")
  dt = emb[0].dtype
  resid0 = kernel_diag(w, n).astype(dt)  # r(x) = k(x, x) - Q_0(x, x)
  floor = jitter_scale(dt) * resid0[0]

  def step(j, state):
    resid, rows, idx = state  # chosen items have r = -inf
    if key is None:
      pick = jnp.argmax(resid)  # largest residual variance
    else:
      unchosen = resid > -jnp.inf
      pos = jnp.maximum(resid, 0.0)
      # P(p) ∝ r(p); if no r > 0 is left (K reproduced), uniform over unchosen items.
      logits = jnp.where(jnp.any(pos > 0), jnp.log(pos), jnp.where(unchosen, 0.0, -jnp.inf))
      pick = jax.random.categorical(jax.random.fold_in(key, j), logits)
    col = kernel_matrix(w, emb, tuple(e[pick][None] for e in emb), lam=lam)[:, 0]  # [n]
    piv = jnp.sqrt(jnp.maximum(resid[pick], floor))  # floor: indefinite K can go < 0
    v = (col - jnp.matmul(rows.T, rows[:, pick], precision=_HI)) / piv  # new factor row
    rows = rows.at[j].set(v)
    resid = (resid - v * v).at[pick].set(-jnp.inf)  # chosen items never again
    return resid, rows, idx.at[j].set(pick.astype(jnp.int32))

  state = (resid0, jnp.zeros((m, n), dt), jnp.zeros((m,), jnp.int32))
  return jax.lax.fori_loop(0, m, step, state)[2]
