"""Trivial rankers, as score functions for :func:`sslmetric.eval.ranking.topk`.

Each returns `score_fn(query_idx int[q], cand_idx int[c]) -> float32 [q, c]`, higher =
better; `topk` breaks ties by the lower item index.

* random: s(x, c) = u(seed, x, c) ∈ [0, 1), a counter-based hash (murmur3's 32-bit
  finaliser) of (seed, x, c), so the scores do not depend on how candidates are blocked;
  24-bit resolution, so ties are rare and broken by index.
* popularity: s(x, c) = n_train(c), c's number of TRAINING interactions (t ≤ T), the
  same for every x. Test items have none before T and so score 0.
* genre Jaccard: s(x, c) = |A_x ∩ A_c| / |A_x ∪ A_c| over the multi-hot categories,
  0 when both are empty (0/0 → 0). Integer counts and one correctly rounded division in
  float32 make equal fractions equal scores, so ties are exact ties.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from sslmetric.data.types import Interactions
from sslmetric.eval.ranking import ScoreFn


def _fmix32(h: jax.Array) -> jax.Array:
  """murmur3's 32-bit finaliser (a bijection on uint32 with full avalanche)."""
  h = h ^ (h >> 16)
  h = h * jnp.uint32(0x85EBCA6B)
  h = h ^ (h >> 13)
  h = h * jnp.uint32(0xC2B2AE35)
  return h ^ (h >> 16)


@jax.jit
def _random(seed: jax.Array, query_idx: jax.Array, cand_idx: jax.Array) -> jax.Array:
  q = query_idx.astype(jnp.uint32)[:, None]
  c = cand_idx.astype(jnp.uint32)[None, :]
  h = _fmix32(_fmix32(q ^ seed) * jnp.uint32(0x9E3779B1) + c)  # hash of (seed, x, c)
  h = _fmix32(h ^ seed)
  return (h >> 8).astype(jnp.float32) * jnp.float32(2.0 ** -24)  # [q, c] in [0, 1)


def random_scores(*, seed: int) -> ScoreFn:
  """Uniform random scores, a fixed function of (seed, query, candidate)."""
  s = jnp.asarray(np.uint32(seed % (1 << 32)))
  return functools.partial(_random, s)


@jax.jit
def _popularity(counts: jax.Array, query_idx: jax.Array, cand_idx: jax.Array):
  return jnp.broadcast_to(counts[cand_idx][None, :],
                          (query_idx.shape[0], cand_idx.shape[0]))


def popularity_counts(train_interactions: Interactions) -> np.ndarray:
  """int64 [I]: number of training interactions per item."""
  return np.bincount(train_interactions.item, minlength=train_interactions.num_items)


def popularity_scores(train_interactions: Interactions) -> ScoreFn:
  """s(x, c) = number of training interactions of c (float32; exact below 2²⁴)."""
  counts = popularity_counts(train_interactions)
  if counts.max(initial=0) >= 1 << 24:
    raise ValueError("an item has >= 2^24 interactions; float32 counts would tie wrongly")
  return functools.partial(_popularity, jnp.asarray(counts, jnp.float32))


@jax.jit
def _jaccard(cats: jax.Array, sizes: jax.Array, query_idx: jax.Array,
             cand_idx: jax.Array) -> jax.Array:
  inter = cats[query_idx] @ cats[cand_idx].T  # [q, c] |A_x ∩ A_c| (exact integers)
  union = sizes[query_idx][:, None] + sizes[cand_idx][None, :] - inter  # |A_x ∪ A_c|
  return jnp.where(union > 0, inter / jnp.where(union > 0, union, 1.0), 0.0)


def genre_jaccard_scores(categories: np.ndarray) -> ScoreFn:
  """s(x, c) = Jaccard similarity of the items' multi-hot categories.

  Args:
    categories: bool (or 0/1) [I, G], e.g. `Items.categories`.
  """
  cats = np.asarray(categories)
  if cats.ndim != 2:
    raise ValueError(f"categories must be [I, G], got shape {cats.shape}")
  if not np.isin(cats, (0, 1)).all():
    raise ValueError("categories must be multi-hot (0/1 or bool)")
  cats = jnp.asarray(cats, jnp.float32)
  return functools.partial(_jaccard, cats, cats.sum(axis=1))
