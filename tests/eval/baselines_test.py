"""Tests of the trivial rankers (random, popularity, genre Jaccard)."""

import fractions
import time

import numpy as np
import pytest
import scipy.stats

from sslmetric.data.types import Interactions
from sslmetric.eval import baselines
from sslmetric.eval import ground_truth as gt_lib
from sslmetric.eval import metrics
from sslmetric.eval import ranking
from sslmetric.eval import split as split_lib


def _brute_force_topk(score, queries, num_items, k):
  """score(x, c) -> exact sortable value; ranks by (score desc, index asc), c ≠ x."""
  out = []
  for x in queries:
    cands = [c for c in range(num_items) if c != x]
    out.append(sorted(cands, key=lambda c: (-score(x, c), c))[:k])
  return np.array(out)


def test_random_scores_seeded_uniform_and_block_independent():
  fn = baselines.random_scores(seed=3)
  q = np.arange(40, dtype=np.int32)
  c = np.arange(300, dtype=np.int32)
  s = np.asarray(fn(q, c))
  assert s.dtype == np.float32 and s.shape == (40, 300)
  assert (s >= 0).all() and (s < 1).all()
  np.testing.assert_array_equal(s, np.asarray(baselines.random_scores(seed=3)(q, c)))
  assert not np.array_equal(s, np.asarray(baselines.random_scores(seed=4)(q, c)))
  np.testing.assert_array_equal(s[5:9, 100:120], np.asarray(fn(q[5:9], c[100:120])))
  assert scipy.stats.kstest(s.ravel(), "uniform").pvalue > 1e-4
  # Neighbouring candidates / queries are uncorrelated.
  assert abs(np.corrcoef(s[:, :-1].ravel(), s[:, 1:].ravel())[0, 1]) < 0.05
  assert abs(np.corrcoef(s[:-1].ravel(), s[1:].ravel())[0, 1]) < 0.05
  a = ranking.topk(fn, q, num_items=300, k=10, cand_block=300)
  b = ranking.topk(fn, q, num_items=300, k=10, cand_block=7, query_block=3)
  np.testing.assert_array_equal(a, b)


def test_popularity_counts_training_interactions_only():
  user = np.array([0, 0, 1, 1, 2, 2, 2])
  item = np.array([0, 1, 1, 2, 1, 3, 4])
  t = np.array([1, 2, 3, 4, 5, 9, 9])
  log = Interactions(user=user.astype(np.int32), item=item.astype(np.int32),
                     rating=np.ones(7, np.float32), timestamp=t,
                     user_ids=np.array(["a", "b", "c"]),
                     item_ids=np.array(list("vwxyzq")))
  s = split_lib.temporal_split(log, f=0.4)  # first times 1, 2, 4, 9, 9 -> T = 4
  assert s.t_split == 4 and s.test_items.tolist() == [3, 4]
  fn = baselines.popularity_scores(s.train)
  scores = np.asarray(fn(np.array([0], np.int32), np.arange(6, dtype=np.int32)))[0]
  np.testing.assert_array_equal(scores, [1, 2, 1, 0, 0, 0])  # test items score 0
  got = ranking.topk(fn, np.arange(6), num_items=6, k=5)
  want = _brute_force_topk(lambda x, c: scores[c], range(6), 6, 5)
  np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed", range(3))
def test_genre_jaccard_matches_exact_fractions(seed):
  rng = np.random.default_rng(seed)
  cats = rng.random((25, 5)) < 0.35
  cats[3] = False  # an item with no category: 0/0 -> 0
  cats[4] = False

  def exact(x, c):
    a, b = set(np.flatnonzero(cats[x])), set(np.flatnonzero(cats[c]))
    return fractions.Fraction(len(a & b), len(a | b)) if a | b else fractions.Fraction(0)

  fn = baselines.genre_jaccard_scores(cats)
  s = np.asarray(fn(np.arange(25, dtype=np.int32), np.arange(25, dtype=np.int32)))
  want = np.array([[float(exact(x, c)) for c in range(25)] for x in range(25)])
  np.testing.assert_allclose(s, want, rtol=1e-6)
  assert s[3, 4] == 0.0 and s[3, 3] == 0.0
  got = ranking.topk(fn, np.arange(25), num_items=25, k=8, cand_block=6)
  np.testing.assert_array_equal(got, _brute_force_topk(exact, range(25), 25, 8))


def test_real_ml100k_trivial_rankers(ml100k_dataset):
  ds = ml100k_dataset
  log = ds.interactions
  s = split_lib.temporal_split(log, f=0.05)
  truth = gt_lib.ground_truth(log, s.test_items, window=10)
  start = time.perf_counter()
  pop = ranking.topk(baselines.popularity_scores(s.train), truth.items,
                     num_items=log.num_items, k=10)
  jac = ranking.topk(baselines.genre_jaccard_scores(ds.items.categories), truth.items,
                     num_items=log.num_items, k=10)
  rnd = [ranking.topk(baselines.random_scores(seed=seed), truth.items,
                      num_items=log.num_items, k=10) for seed in range(5)]
  assert time.perf_counter() - start < 30.0
  # Popularity only ever recommends training items (test items have no count).
  assert np.isin(pop, s.train_items).all()
  counts = np.bincount(s.train.item, minlength=log.num_items)
  order = np.lexsort((np.arange(log.num_items), -counts))  # count desc, index asc
  for j in (0, len(truth) - 1):
    np.testing.assert_array_equal(pop[j], order[order != truth.items[j]][:10])
  m_pop = metrics.mean_metrics(metrics.evaluate_rankings(pop, truth))
  m_jac = metrics.mean_metrics(metrics.evaluate_rankings(jac, truth))
  for m in (m_pop, m_jac):
    assert all(0.0 <= v <= 1.0 for v in m.values())
  # Random: E[HR@k] = mean_x |G(x)| / (I - 1); hypergeometric spread per list.
  n_cand = log.num_items - 1
  p = truth.sizes / n_cand
  var_hits = 10 * p * (1 - p) * (n_cand - 10) / (n_cand - 1)
  hr = np.mean([metrics.mean_metrics(metrics.evaluate_rankings(r, truth))["hr@10"]
                for r in rnd])
  sd = np.sqrt(var_hits.sum() / 100) / len(p) / np.sqrt(len(rnd))
  assert abs(hr - p.mean()) < 5 * sd
  assert m_pop["hr@10"] > hr + 5 * sd  # popularity is strong under this protocol
