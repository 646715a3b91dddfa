"""Ranking metrics @k with the paper's definitions (METHOD.md §3).

For a query x with top-k list (c_1, …, c_k) and ground truth G = G(x), let the hit
indicator be h_r = [c_r ∈ G] and m = Σ_r h_r. With the paper's rank weights

    w_1 = 1,   w_r = 1 / log2(r)  for r ≥ 2          (so w_2 = 1 as well)

    HR@k        = m / k                               (the paper's "HR" is precision@k)
    MRR@k       = 1 / min{r : h_r = 1},  0 if m = 0
    DCG@k       = Σ_r h_r w_r
    NDCG@k      = DCG@k / Σ_{r ≤ m} w_r,  0 if m = 0  (the same hits moved to the top)
    NDCG_full@k = DCG@k / Σ_{r ≤ min(k, |G|)} w_r     (the usual ideal list)

Per-query values are averaged over the test items (those with non-empty G).
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np

from sslmetric.eval.ground_truth import GroundTruth

METRIC_NAMES = ("hr", "mrr", "ndcg", "ndcg_full")


def metric_keys(k: int = 10) -> tuple:
  """('hr@k', 'mrr@k', 'ndcg@k', 'ndcg_full@k') — the keys of the results contract."""
  return tuple(f"{name}@{k}" for name in METRIC_NAMES)


def rank_weights(k: int) -> np.ndarray:
  """float64 [k]: w_1 = 1, w_r = 1 / log2(r) for r = 2 … k."""
  r = np.arange(1, k + 1, dtype=np.float64)
  w = np.ones(k)
  w[1:] = 1.0 / np.log2(r[1:])
  return w


def metrics_from_hits(hits: np.ndarray, truth_sizes: np.ndarray) -> dict:
  """All four metrics from a hit matrix.

  Args:
    hits: bool [q, k], hits[j, r-1] = [c_r ∈ G(x_j)].
    truth_sizes: int [q], |G(x_j)| (≥ the row's number of hits).

  Returns:
    {'hr@k', 'mrr@k', 'ndcg@k', 'ndcg_full@k'}: float64 [q] arrays.
  """
  hits = np.asarray(hits, bool)
  q, k = hits.shape
  sizes = np.asarray(truth_sizes, np.int64)
  m = hits.sum(axis=1)  # [q]
  if np.any(m > sizes):
    raise ValueError("a row has more hits than ground-truth items")
  w = rank_weights(k)
  ideal = np.concatenate([[0.0], np.cumsum(w)])  # ideal[j] = Σ_{r ≤ j} w_r
  dcg = hits.astype(np.float64) @ w  # [q]
  first = np.where(m > 0, hits.argmax(axis=1) + 1, 0)  # rank of the first hit
  mrr = np.where(m > 0, 1.0 / np.maximum(first, 1), 0.0)
  ndcg = np.where(m > 0, dcg / np.where(m > 0, ideal[m], 1.0), 0.0)
  full_den = ideal[np.minimum(k, sizes)]
  ndcg_full = np.where(full_den > 0, dcg / np.where(full_den > 0, full_den, 1.0), 0.0)
  hr_key, mrr_key, ndcg_key, full_key = metric_keys(k)
  return {hr_key: m / k, mrr_key: mrr, ndcg_key: ndcg, full_key: ndcg_full}


def hit_matrix(topk: np.ndarray, truth: Union[GroundTruth, Sequence]) -> tuple:
  """(hits bool [q, k], |G| int [q]) for row-aligned top-k lists and ground truths.

  Args:
    topk: int [q, k]; row j is the list for the query whose truth is row j of `truth`.
    truth: a :class:`GroundTruth` (row j = G(truth.items[j])) or a sequence of q
      integer arrays.
  """
  topk = np.asarray(topk, np.int64)
  q, _ = topk.shape
  if isinstance(truth, GroundTruth):
    indptr, indices = truth.indptr, truth.indices.astype(np.int64)
  else:
    rows = [np.unique(np.asarray(g, np.int64)) for g in truth]
    indptr = np.concatenate([[0], np.cumsum([len(g) for g in rows])]).astype(np.int64)
    indices = np.concatenate(rows) if rows else np.zeros(0, np.int64)
  if len(indptr) - 1 != q:
    raise ValueError(f"{q} top-k rows but {len(indptr) - 1} ground-truth rows")
  sizes = np.diff(indptr)
  # Membership of (row, item) keys: key = row · (I + 1) + item.
  span = int(max(topk.max(initial=0), indices.max(initial=0))) + 1
  truth_keys = np.repeat(np.arange(q, dtype=np.int64), sizes) * span + indices
  list_keys = np.arange(q, dtype=np.int64)[:, None] * span + topk
  hits = np.isin(list_keys, truth_keys)
  return hits, sizes


def evaluate_rankings(topk: np.ndarray, truth: Union[GroundTruth, Sequence]) -> dict:
  """Per-query metrics of row-aligned top-k lists.

  Args:
    topk: int [q, k] ranked item indices (best first), one row per query.
    truth: row-aligned ground truth (a :class:`GroundTruth`, row j = G(items[j]), or a
      sequence of q arrays).

  Returns:
    {'hr@k', 'mrr@k', 'ndcg@k', 'ndcg_full@k'}: float64 [q] per-query values.
  """
  hits, sizes = hit_matrix(topk, truth)
  if np.any(sizes == 0):
    raise ValueError(f"{int((sizes == 0).sum())} queries have an empty ground truth; "
                     "drop them first (ground_truth() does)")
  return metrics_from_hits(hits, sizes)


def mean_metrics(per_query: dict) -> dict:
  """{key: mean over queries (float)}; raises on an empty set of queries."""
  n = {len(v) for v in per_query.values()}
  if n == {0}:
    raise ValueError("no queries to average over")
  return {key: float(np.mean(v)) for key, v in per_query.items()}
