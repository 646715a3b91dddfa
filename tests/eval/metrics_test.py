"""Tests of HR / MRR / NDCG @k with the paper's rank weights."""

import math

import numpy as np
import pytest

from sslmetric.eval import ground_truth as gt_lib
from sslmetric.eval import metrics


def _w(r):
  return 1.0 if r == 1 else 1.0 / math.log2(r)


def _reference(ranked, truth, k):
  """Pure-Python metrics of one list (the METHOD.md §3 definitions)."""
  hits = [int(c in truth) for c in ranked[:k]]
  m = sum(hits)
  dcg = sum(h * _w(r) for r, h in enumerate(hits, start=1))
  first = next((r for r, h in enumerate(hits, start=1) if h), None)
  ideal_hits = sum(_w(r) for r in range(1, m + 1))
  ideal_full = sum(_w(r) for r in range(1, min(k, len(truth)) + 1))
  return {f"hr@{k}": m / k, f"mrr@{k}": 1.0 / first if first else 0.0,
          f"ndcg@{k}": dcg / ideal_hits if m else 0.0,
          f"ndcg_full@{k}": dcg / ideal_full}


def test_rank_weights():
  np.testing.assert_allclose(metrics.rank_weights(4),
                             [1.0, 1.0, 1.0 / math.log2(3), 0.5])


def test_hand_computed_cases():
  topk = np.array([[7, 3, 9, 5],   # hits at ranks 2 and 4, |G| = 3
                   [1, 2, 3, 4],   # no hit
                   [6, 0, 8, 2],  # hit at rank 1 only, |G| = 1
                   [0, 6, 1, 2]])  # hit at rank 2 only, |G| = 5
  truth = [np.array([3, 5, 11]), np.array([10]), np.array([6]),
           np.array([6, 20, 21, 22, 23])]
  got = metrics.evaluate_rankings(topk, truth)
  w3 = 1.0 / math.log2(3)
  np.testing.assert_allclose(got["hr@4"], [0.5, 0.0, 0.25, 0.25])
  np.testing.assert_allclose(got["mrr@4"], [0.5, 0.0, 1.0, 0.5])
  # Row 0: DCG = w2 + w4 = 1 + 1/2; same hits at the top: w1 + w2 = 2.
  # Row 3: a lone hit at rank 2 has w2 = w1 = 1, so the paper's NDCG is 1.
  np.testing.assert_allclose(got["ndcg@4"], [0.75, 0.0, 1.0, 1.0])
  np.testing.assert_allclose(got["ndcg_full@4"],
                             [1.5 / (2 + w3), 0.0, 1.0, 1.0 / (2 + w3 + 0.5)])
  means = metrics.mean_metrics(got)
  assert means["hr@4"] == pytest.approx(0.25)
  assert list(means) == list(metrics.metric_keys(4))


@pytest.mark.parametrize("seed", range(3))
def test_matches_pure_python_reference(seed):
  rng = np.random.default_rng(seed)
  num_items, k, q = 30, 10, 40
  topk = np.array([rng.permutation(num_items)[:k] for _ in range(q)])
  truth = [rng.choice(num_items, size=rng.integers(1, 15), replace=False)
           for _ in range(q)]
  got = metrics.evaluate_rankings(topk, truth)
  for j in range(q):
    want = _reference(topk[j].tolist(), set(truth[j].tolist()), k)
    for key, v in want.items():
      assert got[key][j] == pytest.approx(v, rel=1e-12, abs=1e-15)


def test_ground_truth_container_gives_same_result():
  rng = np.random.default_rng(4)
  rows = [np.sort(rng.choice(50, size=rng.integers(1, 8), replace=False))
          for _ in range(6)]
  gt = gt_lib.GroundTruth(
      items=np.arange(6, dtype=np.int32),
      indptr=np.concatenate([[0], np.cumsum([len(r) for r in rows])]),
      indices=np.concatenate(rows).astype(np.int32), dropped=np.zeros(0, np.int32),
      window=10)
  topk = np.array([rng.permutation(50)[:10] for _ in range(6)])
  a = metrics.evaluate_rankings(topk, gt)
  b = metrics.evaluate_rankings(topk, rows)
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])


def test_empty_truth_and_misaligned_rows_raise():
  with pytest.raises(ValueError, match="empty ground truth"):
    metrics.evaluate_rankings(np.array([[1, 2]]), [np.array([], int)])
  with pytest.raises(ValueError, match="2 top-k rows but 1"):
    metrics.evaluate_rankings(np.array([[1, 2], [3, 4]]), [np.array([1])])
