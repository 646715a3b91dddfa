"""Exact GP on the learned kernel (Eq. 3, 6) and the model-level entry points.

A GP with kernel k (Eq. 5) and Gaussian noise σ² is fitted to centred targets y (the
average rating of each training item). With Σ = K + σ²I = L Lᵀ:

    -log p(y) = ½ yᵀΣ⁻¹y + Σ_j log L_jj + (n/2) log 2π                    (Eq. 6)
    mean(x*)  = k_*ᵀ Σ⁻¹ y,   var(x*) = k(x*, x*) - k_*ᵀ Σ⁻¹ k_*           (Eq. 3)

(latent f; `include_noise` adds σ²). Σ gets the dtype-scaled jitter of
`distance.add_jitter`. The kernel is not PSD in general (see distance.py), so Σ is
positive definite only while σ² > -λ_min(K); otherwise the Cholesky yields NaN, which
`guards.check_finite` reports; `shift_indefinite=True` adds max(0, -λ_min(K)) (constant
under `grad`) to the diagonal instead.

Padded points (`mask` False) follow STYLE.md: their rows/columns of Σ are the identity
and their residuals 0, so they add nothing to the quadratic form or log|Σ|, and the
constant counts valid points only. Padded rows must still hold valid inputs (any real
item), since NaN in a masked entry would poison gradients.

Noise: params hold an unconstrained scalar r; σ² = softplus(r) + floor (`noise_variance`,
inverse `noise_raw`). The floor (1e-4 rating², i.e. σ ≥ 0.01 stars) keeps Σ invertible.

Model params (`init_model_params`):
    {"towers": tuple of per-channel tower params (towers.py),
     "w": EnsembleWeights(h [p], b []),
     "noise": r [],
     "lam": optional tuple of [w_i] Λ diagonals (absent: Λ = I)}
`model_nll` / `model_predict` run the exact GP, or the sparse GP (sparse_gp.py) when an
`inducing_idx` is given.
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve, solve_triangular

from sslmetric.model.distance import (indefinite_shift, jitter_scale, kernel_diag, kernel_matrix,
                                      map_blocks)
from sslmetric.model.ensemble import (EnsembleWeights, ensemble_distance,
                                      init_ensemble_weights, kernel_from_distance)
from sslmetric.model.sparse_gp import (blocked_sparse_stats, sparse_nll_from_stats,
                                       sparse_predict_from_stats)
from sslmetric.model.towers import embed, init_towers, take_rows

_LOG_2PI = float(np.log(2.0 * np.pi))
_HI = jax.lax.Precision.HIGHEST  # no TF32 in the GP algebra on GPUs
NOISE_FLOOR = 1e-4  # σ² floor, in squared target units (ratings)


def noise_variance(raw: jax.Array, *, floor: float = NOISE_FLOOR) -> jax.Array:
  """σ² = softplus(raw) + floor > 0."""
  return jax.nn.softplus(raw) + floor


def noise_raw(noise_var, *, floor: float = NOISE_FLOOR, dtype=None) -> jax.Array:
  """Inverse of `noise_variance`: raw = log(expm1(σ² - floor)), for σ² > floor."""
  v = jnp.asarray(noise_var, dtype) - floor
  return v + jnp.log(-jnp.expm1(-v))  # softplus⁻¹(v), stable for large v


def _chol_sigma(k: jax.Array, noise_var: jax.Array, mask: Optional[jax.Array],
                shift_indefinite: bool = False) -> tuple:
  """L with Σ = K + (σ² + jitter [+ δ]) I = L Lᵀ on valid points, identity on padded."""
  n = k.shape[-1]
  mask = jnp.ones((n,), bool) if mask is None else jnp.asarray(mask, bool)
  diag_k = jnp.diagonal(k)
  count = jnp.sum(mask).astype(k.dtype)  # number of valid points
  mean_diag = jnp.sum(jnp.where(mask, diag_k, 0.0)) / jnp.maximum(count, 1)
  eps = jitter_scale(k.dtype) * jax.lax.stop_gradient(mean_diag)
  sigma = jnp.where(mask[:, None] & mask[None, :], k, 0.0)  # padded rows/cols := 0
  if shift_indefinite:
    eps = eps + indefinite_shift(sigma)  # δ = max(0, -λ_min(K))
  sigma = sigma + jnp.diag(jnp.where(mask, noise_var + eps, 1.0))  # Σ = K + σ²I | I
  return jnp.linalg.cholesky(sigma), mask, count


def exact_nll(*, k: jax.Array, y: jax.Array, noise_var: jax.Array,
              mask: Optional[jax.Array] = None,
              shift_indefinite: bool = False) -> jax.Array:
  """-log N(y | 0, K + σ²I), Eq. 6 including the (n/2) log 2π constant. O(n³).

  Args:
    k: [n, n] kernel matrix K. y: [n] targets. noise_var: σ² > 0 [].
    mask: optional [n] bool; False rows are padding (absent from the likelihood).
    shift_indefinite: add δ = max(0, -λ_min(K)) to the diagonal (no gradient; one
      O(n³) eigvalsh), so an indefinite K gives a finite value: the likelihood of the
      nearest PSD-shifted kernel. Static. Off by default (pure Eq. 6; NaN if Σ ⋡ 0).
  """
  noise_var = jnp.asarray(noise_var, k.dtype)
  chol, mask, count = _chol_sigma(k, noise_var, mask, shift_indefinite)
  y = jnp.where(mask, jnp.asarray(y, k.dtype), 0.0)  # padded residuals := 0
  alpha = solve_triangular(chol, y, lower=True)  # L⁻¹y; yᵀΣ⁻¹y = ‖L⁻¹y‖²
  logdet_half = jnp.sum(jnp.log(jnp.diagonal(chol)))  # ½ log|Σ|
  quad = jnp.dot(alpha, alpha, precision=_HI)  # yᵀΣ⁻¹y
  return 0.5 * quad + logdet_half + 0.5 * count * _LOG_2PI


def exact_predict(*, k: jax.Array, y: jax.Array, noise_var: jax.Array, k_cross: jax.Array,
                  k_test_diag: jax.Array, mask: Optional[jax.Array] = None,
                  include_noise: bool = False, shift_indefinite: bool = False) -> tuple:
  """GP predictive mean and variance at t test points (Eq. 3).

  Args:
    k: [n, n] training kernel. y: [n] targets. noise_var: σ².
    k_cross: [t, n] K(test, train). k_test_diag: [t] k(x*, x*).
    mask: optional [n] bool of valid training rows.
    include_noise: add σ² to the variance (predicting y rather than f).
    shift_indefinite: as in `exact_nll`.

  Returns:
    (mean [t], var [t]).
  """
  noise_var = jnp.asarray(noise_var, k.dtype)
  chol, mask, _ = _chol_sigma(k, noise_var, mask, shift_indefinite)
  y = jnp.where(mask, jnp.asarray(y, k.dtype), 0.0)
  k_cross = jnp.where(mask[None, :], k_cross, 0.0)  # padded points carry no weight
  alpha = cho_solve((chol, True), y)  # Σ⁻¹y
  mean = jnp.matmul(k_cross, alpha, precision=_HI)  # k_*ᵀΣ⁻¹y
  v = solve_triangular(chol, k_cross.T, lower=True)  # L⁻¹k_*: [n, t]
  var = k_test_diag - jnp.sum(v * v, axis=0)  # k_** - k_*ᵀΣ⁻¹k_*
  return mean, (var + noise_var if include_noise else var)


def exact_nll_from_channels(*, w: EnsembleWeights, d_channels: jax.Array, y: jax.Array,
                            noise_var: jax.Array, mask: Optional[jax.Array] = None,
                            shift_indefinite: bool = False) -> jax.Array:
  """Eq. 6 with K built from precomputed channel distances (towers frozen, Eq. 8).

  For personalisation: D_i among a user's items are computed once; ℓ_u(w) is then
  cheap in w. d_channels: [n, n, p] (from `distance.channel_distances(emb)`).
  """
  k = kernel_from_distance(ensemble_distance(w, d_channels))  # K = exp(-D/2)
  return exact_nll(k=k, y=y, noise_var=noise_var, mask=mask,
                   shift_indefinite=shift_indefinite)


def init_model_params(key: jax.Array, specs: Sequence, *, hidden: int = 50,
                      id_width: int = 30, dtype=jnp.float32, h0: float = 1.0,
                      b0: float = 0.0, noise_var0: float = 0.1) -> dict:
  """Full model params: towers, w = (h0·1, b0) and raw noise with σ² = noise_var0."""
  towers = init_towers(key, specs, hidden=hidden, id_width=id_width, dtype=dtype)
  return {"towers": towers,
          "w": init_ensemble_weights(len(towers), h0=h0, b0=b0, dtype=dtype),
          "noise": noise_raw(noise_var0, dtype=dtype)}


def _embed_all(params: dict, inputs: Sequence) -> tuple:
  return embed(params["towers"], inputs)


def model_nll(params: dict, inputs: Sequence, y: jax.Array, *,
              inducing_idx: Optional[jax.Array] = None, titsias: bool = False,
              mask: Optional[jax.Array] = None, block_size: int = 4096,
              shift_indefinite: bool = False) -> jax.Array:
  """The SSL-metric objective: GP NLL of targets y under the model's kernel.

  Embeds every item once, then either the exact NLL (Eq. 6; O(n³), `inducing_idx` None)
  or the sparse one (App. G; O(n m²), K_nm in blocks of `block_size` rows).

  Args:
    params: model params (see module docstring).
    inputs: tuple of per-channel inputs for the n training items (towers.py).
    y: [n] centred targets (cast to the params' dtype).
    inducing_idx: optional int [m] rows of `inputs` forming the supporting set (valid
      rows only; see `sparse_gp.select_inducing`).
    titsias: sparse only: Titsias' -ELBO instead of the DTC NLL. Static.
    mask: optional [n] bool of valid rows. block_size: sparse block rows. Static.
    shift_indefinite: exact only (the sparse path always shifts K_mm), see `exact_nll`.
  """
  w, lam = params["w"], params.get("lam")
  emb = _embed_all(params, inputs)
  dt = emb[0].dtype
  y = jnp.asarray(y, dt)
  noise_var = noise_variance(params["noise"]).astype(dt)
  if inducing_idx is None:
    k = kernel_matrix(w, emb, lam=lam)  # K_nn: [n, n]
    return exact_nll(k=k, y=y, noise_var=noise_var, mask=mask,
                     shift_indefinite=shift_indefinite)
  emb_m = take_rows(emb, inducing_idx)  # supporting items' embeddings
  k_mm = kernel_matrix(w, emb_m, lam=lam)  # [m, m]
  stats = blocked_sparse_stats(
      k_mm=k_mm, k_rows=lambda e: kernel_matrix(w, e, emb_m, lam=lam), xs=emb, y=y,
      k_diag=kernel_diag(w, y.shape[0]).astype(dt), mask=mask, block_size=block_size)
  return sparse_nll_from_stats(stats, noise_var, titsias=titsias)


def model_predict(params: dict, train_inputs: Sequence, y: jax.Array,
                  test_inputs: Sequence, *, inducing_idx: Optional[jax.Array] = None,
                  mask: Optional[jax.Array] = None, include_noise: bool = False,
                  block_size: int = 4096, shift_indefinite: bool = False) -> tuple:
  """Predictive mean and variance (Eq. 3 exact, or DTC sparse) at the test items.

  Args: as `model_nll`; `test_inputs` is the tuple of inputs of t test items.
  Returns: (mean [t], var [t]).
  """
  w, lam = params["w"], params.get("lam")
  emb = _embed_all(params, train_inputs)
  emb_t = _embed_all(params, test_inputs)
  dt = emb[0].dtype
  y = jnp.asarray(y, dt)
  noise_var = noise_variance(params["noise"]).astype(dt)
  t = emb_t[0].shape[0]
  k_tt = kernel_diag(w, t).astype(dt)
  if inducing_idx is None:
    return exact_predict(k=kernel_matrix(w, emb, lam=lam), y=y, noise_var=noise_var,
                         k_cross=kernel_matrix(w, emb_t, emb, lam=lam), k_test_diag=k_tt,
                         mask=mask, include_noise=include_noise,
                         shift_indefinite=shift_indefinite)
  emb_m = take_rows(emb, inducing_idx)
  stats = blocked_sparse_stats(
      k_mm=kernel_matrix(w, emb_m, lam=lam),
      k_rows=lambda e: kernel_matrix(w, e, emb_m, lam=lam), xs=emb, y=y,
      k_diag=kernel_diag(w, y.shape[0]).astype(dt), mask=mask, block_size=block_size)

  def predict_block(e):
    return sparse_predict_from_stats(stats, noise_var, k_tm=kernel_matrix(w, e, emb_m, lam=lam),
                                     k_test_diag=kernel_diag(w, e[0].shape[0]).astype(dt),
                                     include_noise=include_noise)

  return map_blocks(predict_block, emb_t, block_size=block_size)
