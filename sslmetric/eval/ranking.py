"""Blocked top-k ranking over the whole catalogue.

For a query item x the candidates are every item c ≠ x (METHOD.md §3). Given a score
function s(x, c) with HIGHER = better (a distance-based metric passes s = -D), the
ranking is by decreasing s with ties broken by the lower item index:

    c ≺ c'  ⇔  s(x, c) > s(x, c')  or  (s(x, c) = s(x, c') and c < c').

Memory is bounded: queries are processed in blocks of `query_block` and candidates in
blocks of `cand_block` (the last blocks are padded, so every call to `score_fn` and to
the jitted merge has the same shapes and compiles once). A running top-k (values, indices)
is merged with each candidate block by `jax.lax.top_k`, which returns equal values
lower-position first (documented and tested in JAX since 2025; `ranking_test.py` checks
it here too). The merge keeps the tie rule exact because the running top-k always sits
before the block, holds only lower item indices than the block, and is itself sorted by
(score desc, index asc); so among equal scores, position order is item-index order.

-0.0 is mapped to +0.0 before comparing, so the two zeros tie as they do for numpy. NaN
scores and -inf scores of real candidates are reported as errors: -inf is reserved for
the query itself and the padding, which must rank below every real candidate.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

ScoreFn = Callable[[jax.Array, jax.Array], jax.Array]  # (int[q], int[c]) -> [q, c]


@functools.partial(jax.jit, static_argnames=("k", "num_items"))
def _merge(top_s: jax.Array, top_i: jax.Array, scores: jax.Array, queries: jax.Array,
           q_valid: jax.Array, cands: jax.Array, *, k: int, num_items: int) -> tuple:
  """Merges a [qb, cb] score block into the running top-k.

  Args:
    top_s: [qb, k] running top scores, sorted desc (ties by index asc).
    top_i: int32 [qb, k] their item indices.
    scores: [qb, cb] s(query, cand) of this block.
    queries: int32 [qb] query items.
    q_valid: bool [qb], false for the padding rows of the last query block.
    cands: int32 [cb] candidate items (≥ num_items for padding).
    k: list length.
    num_items: catalogue size.

  Returns:
    (top_s, top_i, n_bad): the merged top-k and the number of NaN / -inf scores of real
    candidates in this block.
  """
  valid = (cands[None, :] < num_items) & (cands[None, :] != queries[:, None])  # [qb, cb]
  scores = jnp.where(scores == 0, jnp.zeros_like(scores), scores)  # -0.0 → +0.0
  n_bad = jnp.sum(valid & q_valid[:, None] & (jnp.isnan(scores) | (scores == -jnp.inf)))
  scores = jnp.where(valid, scores, -jnp.inf)
  both_s = jnp.concatenate([top_s, scores.astype(top_s.dtype)], axis=1)  # [qb, k + cb]
  both_i = jnp.concatenate(
      [top_i, jnp.broadcast_to(cands[None, :], scores.shape).astype(top_i.dtype)], axis=1)
  s, j = jax.lax.top_k(both_s, k)  # stable: equal values lower position first
  return s, jnp.take_along_axis(both_i, j, axis=1), n_bad


def topk(score_fn: ScoreFn, queries: np.ndarray, *, num_items: int, k: int = 10,
         query_block: int = 256, cand_block: int = 8192,
         return_scores: bool = False):
  """Top-k candidates c ≠ x for every query x, by decreasing score, ties by index.

  Args:
    score_fn: (query_idx int32 [qb], cand_idx int32 [cb]) -> [qb, cb] float scores,
      higher = better. Called with fixed shapes (padded blocks); padded entries hold
      valid item indices and their scores are ignored. May be jitted by the caller.
    queries: int [q] query item indices.
    num_items: catalogue size I (candidates are 0 … I-1 minus the query).
    k: list length; needs k ≤ I - 1.
    query_block: queries per block.
    cand_block: candidates per block (capped at I).
    return_scores: also return the [q, k] scores.

  Returns:
    int32 [q, k] item indices (and the scores when asked).

  Raises:
    ValueError: when a real candidate scored NaN or -inf.
  """
  queries = np.asarray(queries, np.int32)
  if k < 1 or k > num_items - 1:
    raise ValueError(f"need 1 <= k <= num_items - 1 = {num_items - 1}, got k={k}")
  if len(queries) and (queries.min() < 0 or queries.max() >= num_items):
    raise ValueError(f"queries must lie in [0, {num_items})")
  q = len(queries)
  qb = max(1, min(query_block, q))
  cb = min(cand_block, num_items)
  n_cblocks = -(-num_items // cb)
  out_i = np.zeros((q, k), np.int32)
  out_s = None
  n_bad = 0
  for q0 in range(0, q, qb):
    qi = np.zeros(qb, np.int32)  # padded with item 0; those rows are discarded
    qi[:min(qb, q - q0)] = queries[q0:q0 + qb]
    qi_j = jnp.asarray(qi)
    q_valid = jnp.asarray(np.arange(qb) < q - q0)
    top_s = top_i = None
    for b in range(n_cblocks):
      cands = np.arange(b * cb, (b + 1) * cb, dtype=np.int32)  # may run past I
      safe = jnp.asarray(np.where(cands < num_items, cands, 0).astype(np.int32))
      scores = jnp.asarray(score_fn(qi_j, safe))
      if scores.shape != (qb, cb):
        raise ValueError(f"score_fn returned shape {scores.shape}, expected {(qb, cb)}")
      if not jnp.issubdtype(scores.dtype, jnp.floating):
        raise TypeError(f"score_fn must return floating scores, got {scores.dtype}")
      if top_s is None:  # -inf / sentinel start; the first block replaces it
        top_s = jnp.full((qb, k), -jnp.inf, scores.dtype)
        top_i = jnp.full((qb, k), num_items, jnp.int32)
      top_s, top_i, bad = _merge(top_s, top_i, scores, qi_j, q_valid,
                                 jnp.asarray(cands), k=k, num_items=num_items)
      n_bad = n_bad + bad  # stays on device; read once at the end
    rows = min(qb, q - q0)
    out_i[q0:q0 + rows] = np.asarray(top_i)[:rows]
    if return_scores:
      if out_s is None:
        out_s = np.zeros((q, k), np.asarray(top_s).dtype)
      out_s[q0:q0 + rows] = np.asarray(top_s)[:rows]
  n_bad = int(n_bad)
  if n_bad:
    raise ValueError(f"score_fn gave NaN or -inf for {n_bad} (query, candidate) pairs; "
                     "scores of real candidates must be finite or +inf")
  if return_scores:
    return out_i, (out_s if out_s is not None else np.zeros((0, k)))
  return out_i
