"""Siamese channel distances (Eq. 1), ensemble distance / kernel matrices (Eq. 5, 7).

Distances are computed from tower embeddings (one per item, see `towers.embed`), never
by running towers per pair. For channel i with embeddings a = F_i(x_a), b = F_i(x_b) and
an optional non-negative diagonal Λ_i = diag(λ_i):

    D_i(a, b) = (a - b)ᵀ Λ_i (a - b) = ‖a‖²_Λ + ‖b‖²_Λ - 2 aᵀΛ_i b,        (Eq. 1)

the right-hand form giving a whole [na, nb] block from one matrix product (clipped at 0
against round-off; the product runs at HIGHEST precision so TF32 on GPUs cannot spoil
the cancellation). The paper fixes Λ = I (`lam=None`).

On top of these, with w = (h, b) (`ensemble.EnsembleWeights`):

    D(a, b) = sigmoid(Σ_i h_i D_i(a, b) + b) ∈ (0, 1),                      (Eq. 7)
    k(a, b) = exp(-D(a, b) / 2) ∈ (e^(-1/2), 1),   k(a, a) = exp(-sigmoid(b) / 2).  (Eq. 5)

Caution: this kernel is NOT positive semi-definite in general. sigmoid turns the
squared distance into a soft threshold, and for b < 0 (similar items at D ≈ 0) K can
have eigenvalues far below 0 (≈ -mean diag(K) in small random examples). It approaches
PSD as b grows: for h ≥ 0, K → e^(-1/2)·exp∘(e^(-b)·G/2) with G a Gaussian kernel matrix.
The exact GP needs σ² > -λ_min(K) (or `shift_indefinite`, gp.py); the sparse GP shifts
K_mm (`sparse_gp.inducing_cholesky`). Random tower embeddings at initialisation already
give slightly negative eigenvalues.

For candidate sets too large for one [na, nb] block (e.g. 160K × 160K), `map_blocks`
maps a function over fixed-size blocks of rows with `lax.map`, padding the last block so
it compiles once; the function should reduce each block (top-k, sums).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sslmetric.model.ensemble import EnsembleWeights, ensemble_distance, kernel_from_distance

_HI = jax.lax.Precision.HIGHEST


def _check_channels(emb_a: Sequence, emb_b: Sequence, lam) -> None:
  if len(emb_a) != len(emb_b):
    raise ValueError(f"emb_a has {len(emb_a)} channels, emb_b has {len(emb_b)}")
  if lam is not None and len(lam) != len(emb_a):
    raise ValueError(f"lam has {len(lam)} entries for {len(emb_a)} channels")


def channel_distances(emb_a: Sequence[jax.Array], emb_b: Optional[Sequence[jax.Array]] = None,
                      *, lam: Optional[Sequence[jax.Array]] = None) -> jax.Array:
  """All-pairs per-channel distances D_i(a, b) (Eq. 1).

  Args:
    emb_a: tuple of [na, w_i] embeddings, one per channel.
    emb_b: tuple of [nb, w_i] embeddings, or None for `emb_a` against itself (then the
      result is exactly symmetric with a zero diagonal).
    lam: optional tuple of [w_i] non-negative diagonals of Λ_i (None: Λ_i = I).

  Returns:
    [na, nb, p] with entry [a, b, i] = D_i(a, b) ≥ 0.
  """
  self_mode = emb_b is None
  emb_b = emb_a if self_mode else emb_b
  _check_channels(emb_a, emb_b, lam)
  out = []
  for i, (a, b) in enumerate(zip(emb_a, emb_b)):
    la = jnp.ones(a.shape[-1], a.dtype) if lam is None else jnp.asarray(lam[i], a.dtype)
    sq_a = jnp.sum(la * a * a, axis=-1)  # ‖a‖²_Λ: [na]
    sq_b = jnp.sum(la * b * b, axis=-1)  # ‖b‖²_Λ: [nb]
    cross = jnp.matmul(a * la, b.T, precision=_HI)  # aᵀΛb: [na, nb]
    d = jnp.maximum(sq_a[:, None] + sq_b[None, :] - 2.0 * cross, 0.0)  # D_i ≥ 0
    if self_mode:
      d = 0.5 * (d + d.T)  # exact symmetry
      d = d * (1.0 - jnp.eye(d.shape[0], dtype=d.dtype))  # D_i(a, a) = 0 exactly
    out.append(d)
  return jnp.stack(out, axis=-1)


def pair_channel_distances(emb_a: Sequence[jax.Array], emb_b: Sequence[jax.Array], *,
                           lam: Optional[Sequence[jax.Array]] = None) -> jax.Array:
  """Per-channel distances of paired rows, D_i(a_j, b_j) (Eq. 1), for contrastive batches.

  Computed from the differences (no cancellation). Returns [n, p].
  """
  _check_channels(emb_a, emb_b, lam)
  out = []
  for i, (a, b) in enumerate(zip(emb_a, emb_b)):
    diff = a - b  # F_i(x_a) - F_i(x_b): [n, w_i]
    la = 1.0 if lam is None else jnp.asarray(lam[i], diff.dtype)
    out.append(jnp.sum(la * diff * diff, axis=-1))  # (a - b)ᵀ Λ (a - b)
  return jnp.stack(out, axis=-1)


def pair_distance(w: EnsembleWeights, emb_a: Sequence[jax.Array], emb_b: Sequence[jax.Array],
                  *, lam: Optional[Sequence[jax.Array]] = None) -> jax.Array:
  """Ensemble distance D(a_j, b_j) of paired rows (Eq. 7): [n] in (0, 1)."""
  return ensemble_distance(w, pair_channel_distances(emb_a, emb_b, lam=lam))


def distance_matrix(w: EnsembleWeights, emb_a: Sequence[jax.Array],
                    emb_b: Optional[Sequence[jax.Array]] = None, *,
                    lam: Optional[Sequence[jax.Array]] = None) -> jax.Array:
  """Ensemble distances D(a, b) = sigmoid(Σ_i h_i D_i(a, b) + b) (Eq. 7): [na, nb]."""
  return ensemble_distance(w, channel_distances(emb_a, emb_b, lam=lam))


def kernel_matrix(w: EnsembleWeights, emb_a: Sequence[jax.Array],
                  emb_b: Optional[Sequence[jax.Array]] = None, *,
                  lam: Optional[Sequence[jax.Array]] = None) -> jax.Array:
  """Kernel k(a, b) = exp(-D(a, b) / 2) (Eq. 5): [na, nb]; `emb_b=None` for K(A, A)."""
  return kernel_from_distance(distance_matrix(w, emb_a, emb_b, lam=lam))


def kernel_diag(w: EnsembleWeights, n: int) -> jax.Array:
  """diag K: k(a, a) = exp(-sigmoid(b) / 2) for every item (D_i(a, a) = 0): [n]."""
  b = jnp.asarray(w.b)
  return jnp.full((n,), kernel_from_distance(jax.nn.sigmoid(b)), b.dtype)


def jitter_scale(dtype) -> float:
  """Relative Cholesky jitter for `dtype`: 1e-10 (f64), 1e-6 (f32), 1e-3 (16-bit).

  Multiplied by mean(diag K), it sits a few orders above the dtype's rounding of a
  kernel entry (ε64 ≈ 2e-16, ε32 ≈ 1e-7) and far below any modelled variance.
  """
  bits = jnp.finfo(dtype).bits
  return {64: 1e-10, 32: 1e-6}.get(bits, 1e-3)


def add_jitter(k: jax.Array) -> jax.Array:
  """K + ε·mean(diag K)·I with ε = `jitter_scale(K.dtype)` (no gradient through ε)."""
  eps = jitter_scale(k.dtype) * jax.lax.stop_gradient(jnp.mean(jnp.diagonal(k)))
  return k + eps * jnp.eye(k.shape[-1], dtype=k.dtype)


def indefinite_shift(k: jax.Array) -> jax.Array:
  """max(0, -λ_min(K)): how far K is from PSD (one O(n³) eigvalsh; no gradient)."""
  lam_min = jnp.linalg.eigvalsh(jax.lax.stop_gradient(k))[0]  # smallest eigenvalue
  return jnp.maximum(-lam_min, 0.0)


def pad_rows(xs, block_size: int):
  """Pads the leading axis of every leaf of `xs` to a multiple of `block_size`.

  `block_size` is capped at n (a small input is one unpadded block).

  Padding rows copy row 0 (valid values: no NaN, no out-of-range index).

  Returns:
    (padded xs reshaped to [num_blocks, block_size, ...], n, valid-row mask
    [num_blocks, block_size]).
  """
  leaves = jax.tree_util.tree_leaves(xs)
  if not leaves:
    raise ValueError("pad_rows: empty pytree")
  n = leaves[0].shape[0]
  for leaf in leaves:
    if leaf.shape[0] != n:
      raise ValueError(f"pad_rows: leading axes differ ({leaf.shape[0]} vs {n})")
  if block_size < 1:
    raise ValueError(f"block_size must be >= 1, got {block_size}")
  block_size = min(block_size, max(n, 1))  # never pad beyond one block of n rows
  num_blocks = max(1, -(-n // block_size))
  pad = num_blocks * block_size - n

  def _pad(a):
    a = jnp.asarray(a)
    if pad:
      a = jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)], axis=0)
    return a.reshape((num_blocks, block_size) + a.shape[1:])

  mask = (np.arange(num_blocks * block_size) < n).reshape(num_blocks, block_size)
  return jax.tree_util.tree_map(_pad, xs), n, jnp.asarray(mask)


def map_blocks(fn: Callable, xs, *, block_size: int):
  """`fn` over fixed-size row blocks of `xs`, results concatenated along rows.

  Compiles `fn` once (a `lax.map` over [num_blocks, block_size, ...]); the last block is
  padded and its padded rows dropped from the result. Peak memory is one block's.

  Example (top-10 nearest catalogue items per query, never forming [nq, 160K] at once
  beyond one block of queries):

      def block_topk(q_emb):          # tuple of [block, w_i]
        d = distance_matrix(w, q_emb, cand_emb)          # [block, n_cand]
        return jax.lax.top_k(-d, 10)[1]                  # [block, 10]
      idx = map_blocks(block_topk, query_emb, block_size=256)   # [nq, 10]

  Args:
    fn: maps a block (a pytree like `xs` with leading axis `block_size`) to a pytree of
      arrays with leading axis `block_size` (one row per input row).
    xs: pytree of arrays sharing the leading axis n.
    block_size: rows per block.
  """
  blocks, n, _ = pad_rows(xs, block_size)
  out = jax.lax.map(fn, blocks)
  return jax.tree_util.tree_map(lambda o: o.reshape((-1,) + o.shape[2:])[:n], out)
