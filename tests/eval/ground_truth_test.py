"""Tests of G(x) against a brute-force pure-Python reference."""

import numpy as np
import pytest

from sslmetric.data.types import Interactions
from sslmetric.eval import ground_truth as gt_lib
from sslmetric.eval import split as split_lib


def _log(user, item, timestamp, *, num_items=None):
  user = np.asarray(user, np.int32)
  item = np.asarray(item, np.int32)
  num_items = num_items or int(item.max()) + 1
  return Interactions(user=user, item=item, rating=np.ones(len(user), np.float32),
                      timestamp=np.asarray(timestamp, np.int64),
                      user_ids=np.array([f"u{u}" for u in range(int(user.max()) + 1)]),
                      item_ids=np.array([f"i{i}" for i in range(num_items)]))


def _brute_force(log, interest, *, window=None, horizon=None):
  """{x: sorted list} by looping over every user's (timestamp, item)-sorted sequence."""
  seqs = {}
  for u, x, t in zip(log.user.tolist(), log.item.tolist(), log.timestamp.tolist()):
    seqs.setdefault(u, []).append((t, x))
  out = {}
  for seq in seqs.values():
    seq.sort()
    for i, (ti, xi) in enumerate(seq):
      if xi not in interest:
        continue
      for j, (tj, xj) in enumerate(seq):
        near = (0 < abs(i - j) <= window) if horizon is None else (
            j != i and abs(ti - tj) <= horizon)
        if near and xj != xi:
          out.setdefault(xi, set()).add(xj)
  return {x: sorted(g) for x, g in out.items()}


def _as_lists(truth):
  return {x: g.tolist() for x, g in truth.as_dict().items()}


def test_hand_case_ties_broken_by_item_index():
  # User 0 rates items 3, 1, 2 at the same second: sequence 1, 2, 3. User 1: 2 then 4.
  log = _log([0, 0, 0, 1, 1], [3, 1, 2, 2, 4], [5, 5, 5, 7, 9])
  truth = gt_lib.ground_truth(log, [1, 2, 3, 4], window=1)
  assert _as_lists(truth) == {1: [2], 2: [1, 3, 4], 3: [2], 4: [2]}
  np.testing.assert_array_equal(truth[2], [1, 3, 4])
  np.testing.assert_array_equal(truth.sizes, [1, 3, 1, 1])


def test_empty_truth_dropped_and_counted():
  # Item 5 is a user's single interaction; item 6 never occurs; item 0 twice in a row.
  log = _log([0, 0, 0, 1, 2, 2], [0, 1, 2, 5, 0, 0], [1, 2, 3, 4, 5, 6], num_items=7)
  truth = gt_lib.ground_truth(log, [0, 5, 6], window=10)
  np.testing.assert_array_equal(truth.items, [0])
  np.testing.assert_array_equal(truth.dropped, [5, 6])
  np.testing.assert_array_equal(truth[0], [1, 2])  # x itself excluded (user 2's repeat)
  assert truth.report["n_items_dropped_empty_truth"] == 2
  with pytest.raises(KeyError):
    truth[5]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("window", [1, 2, 10])
def test_window_matches_brute_force(seed, window):
  rng = np.random.default_rng(seed)
  n = int(rng.integers(30, 120))
  log = _log(rng.integers(0, 7, n), rng.integers(0, 25, n), rng.integers(0, 8, n),
             num_items=27)
  interest = rng.choice(27, size=10, replace=False)
  want = _brute_force(log, set(interest.tolist()), window=window)
  truth = gt_lib.ground_truth(log, interest, window=window)
  assert _as_lists(truth) == want
  assert set(truth.dropped.tolist()) == set(interest.tolist()) - set(want)
  small = gt_lib.ground_truth(log, interest, window=window, chunk_pairs=3)
  assert _as_lists(small) == want  # chunking changes nothing


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("horizon", [0, 2, 5])
def test_horizon_matches_brute_force(seed, horizon):
  rng = np.random.default_rng(100 + seed)
  n = int(rng.integers(30, 120))
  log = _log(rng.integers(0, 5, n), rng.integers(0, 20, n),
             1_000_000 + rng.integers(0, 20, n), num_items=20)
  interest = np.arange(20)
  want = _brute_force(log, set(range(20)), horizon=horizon)
  truth = gt_lib.ground_truth(log, interest, horizon_seconds=horizon, chunk_pairs=7)
  assert _as_lists(truth) == want
  assert truth.window is None and truth.horizon_seconds == horizon


def test_real_ml100k_test_items(ml100k_dataset):
  log = ml100k_dataset.interactions
  s = split_lib.temporal_split(log, f=0.05)
  truth = gt_lib.ground_truth(log, s.test_items, window=10)
  want = _brute_force(log, set(s.test_items.tolist()), window=10)
  assert _as_lists(truth) == want
  assert len(truth) + len(truth.dropped) == s.num_test_items
  assert len(truth) == len(want)


def test_personal_ground_truth_uses_own_sequence():
  rng = np.random.default_rng(5)
  user = np.repeat(np.arange(4), 30)
  item = np.concatenate([rng.permutation(40)[:30] for _ in range(4)])
  log = _log(user, item, rng.integers(0, 10, len(user)), num_items=40)
  p = split_lib.sample_personal_users(log, n_users=2, min_interactions=20,
                                      max_interactions=200, seed=3)[0]
  truth = gt_lib.personal_ground_truth(log, p, window=3)
  own = log.subset(log.user == p.user)
  want = _brute_force(own, set(p.query_items.tolist()), window=3)
  assert _as_lists(truth) == want
  assert set(truth.items.tolist()) | set(truth.dropped.tolist()) == set(
      p.query_items.tolist())
