"""Tests of the blocked top-k against a brute-force numpy ranking with ties."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslmetric.eval import ranking


def _brute_force(scores, queries, k):
  """Rows of np.lexsort by (score desc, index asc) over c ≠ x."""
  out = []
  for x in queries:
    cands = np.array([c for c in range(scores.shape[1]) if c != x])
    s = scores[x, cands]
    out.append(cands[np.lexsort((cands, -s))][:k])
  return np.array(out)


def _table_fn(table):
  t = jnp.asarray(table)
  return lambda q, c: t[q][:, c]


def test_lax_top_k_puts_lower_index_first_on_ties():
  x = jnp.array([[1.0, 3.0, 3.0, 0.0, 3.0, 1.0]])
  s, i = jax.lax.top_k(x, 5)
  np.testing.assert_array_equal(i, [[1, 2, 4, 0, 5]])
  np.testing.assert_array_equal(s, [[3.0, 3.0, 3.0, 1.0, 1.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("blocks", [(5, 8), (3, 37), (64, 7), (1, 1000)])
def test_matches_brute_force_with_ties(dtype, blocks):
  rng = np.random.default_rng(0)
  num_items = 37
  table = rng.integers(0, 4, (num_items, num_items)).astype(dtype)  # many ties
  queries = rng.integers(0, num_items, 11)
  qb, cb = blocks
  got, s = ranking.topk(_table_fn(table), queries, num_items=num_items, k=10,
                        query_block=qb, cand_block=cb, return_scores=True)
  want = _brute_force(table, queries, 10)
  np.testing.assert_array_equal(got, want)
  np.testing.assert_array_equal(s, np.take_along_axis(table[queries], want, axis=1))
  assert got.dtype == np.int32 and s.dtype == dtype


def test_continuous_scores_and_k_equal_catalogue_minus_one():
  rng = np.random.default_rng(1)
  table = rng.normal(size=(9, 9))
  got = ranking.topk(_table_fn(table), np.arange(9), num_items=9, k=8, cand_block=4)
  np.testing.assert_array_equal(got, _brute_force(table, np.arange(9), 8))
  for x, row in enumerate(got):
    assert x not in row  # the query is never a candidate


def test_negative_zero_ties_with_zero():
  table = np.zeros((6, 6))
  table[:, 1] = -0.0
  table[:, 4] = -0.0
  table[:, 5] = 1.0
  got = ranking.topk(_table_fn(table), np.array([0, 3]), num_items=6, k=4, cand_block=2)
  np.testing.assert_array_equal(got, [[5, 1, 2, 3], [5, 0, 1, 2]])


def test_bad_scores_raise():
  table = np.ones((5, 5))
  table[2, 3] = np.nan
  with pytest.raises(ValueError, match="NaN or -inf for 1"):
    ranking.topk(_table_fn(table), np.array([2]), num_items=5, k=2)
  table[2, 3] = -np.inf
  with pytest.raises(ValueError, match="NaN or -inf"):
    ranking.topk(_table_fn(table), np.array([2]), num_items=5, k=2)
  table[2, 3] = 1.0
  table[2, 2] = np.nan  # the query's own score is ignored
  ranking.topk(_table_fn(table), np.array([2]), num_items=5, k=2)
  table[0, 3] = np.nan  # padding rows repeat query 0 and are ignored too
  ranking.topk(_table_fn(table), np.array([2, 1, 2]), num_items=5, k=2, query_block=2)
  with pytest.raises(ValueError, match="k <= num_items - 1"):
    ranking.topk(_table_fn(table), np.array([2]), num_items=5, k=5)
  with pytest.raises(TypeError, match="floating"):
    ranking.topk(lambda q, c: jnp.zeros((q.shape[0], c.shape[0]), jnp.int32),
                 np.array([2]), num_items=5, k=2)


def test_padded_blocks_compile_once():
  rng = np.random.default_rng(2)
  table = jnp.asarray(rng.normal(size=(50, 50)))

  @jax.jit
  @chex.assert_max_traces(n=1)
  def score_fn(q, c):
    return table[q][:, c]

  before = ranking._merge._cache_size()
  # 23 queries in blocks of 4 (last padded), 50 candidates in blocks of 16 (last padded).
  got = ranking.topk(score_fn, rng.integers(0, 50, 23), num_items=50, k=5,
                     query_block=4, cand_block=16)
  assert ranking._merge._cache_size() - before <= 1
  assert got.shape == (23, 5)
