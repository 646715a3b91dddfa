"""Tests of the temporal split, its validation carve-out and the personal protocol."""

import numpy as np
import pytest

from sslmetric.data.types import Interactions
from sslmetric.eval import split as split_lib


def _log(user, item, timestamp, *, num_users=None, num_items=None, rating=None):
  user = np.asarray(user, np.int32)
  item = np.asarray(item, np.int32)
  num_users = num_users or int(user.max()) + 1
  num_items = num_items or int(item.max()) + 1
  rating = np.ones(len(user), np.float32) if rating is None else np.asarray(
      rating, np.float32)
  return Interactions(user=user, item=item, rating=rating,
                      timestamp=np.asarray(timestamp, np.int64),
                      user_ids=np.array([f"u{u}" for u in range(num_users)]),
                      item_ids=np.array([f"i{i}" for i in range(num_items)]))


def _random_log(rng, *, n=60, users=6, items=15, t_max=30):
  return _log(rng.integers(0, users, n), rng.integers(0, items - 2, n),
              rng.integers(0, t_max, n), num_users=users, num_items=items,
              rating=rng.integers(1, 6, n))


def test_user_time_order_matches_python_sort():
  rng = np.random.default_rng(0)
  log = _random_log(rng, t_max=5)  # many (user, timestamp) ties
  order = split_lib.user_time_order(log)
  rows = sorted(range(len(log)),
                key=lambda r: (log.user[r], log.timestamp[r], log.item[r]))
  got = [(log.user[r], log.timestamp[r], log.item[r]) for r in order]
  want = [(log.user[r], log.timestamp[r], log.item[r]) for r in rows]
  assert got == want


def test_split_hand_case():
  # First times: item0 1, item1 2, item2 3, item3 4, item4 10; item5 never interacted.
  log = _log([0, 0, 1, 1, 2, 2, 0], [0, 1, 2, 3, 4, 0, 4], [1, 2, 3, 4, 10, 11, 12],
             num_items=6)
  # n = 5 first times, f = 0.25: 'lower' quantile = sorted[floor(4 * 0.75)] = 4.
  s = split_lib.temporal_split(log, f=0.25)
  assert s.t_split == 4
  np.testing.assert_array_equal(s.train_items, [0, 1, 2, 3])
  np.testing.assert_array_equal(s.test_items, [4])
  np.testing.assert_array_equal(s.train_mask, [1, 1, 1, 1, 0, 0, 0])
  assert len(s.train) == 4
  assert s.report["n_items_never_interacted"] == 1
  np.testing.assert_array_equal(s.first_time, [1, 2, 3, 4, 10, -1])


@pytest.mark.parametrize("seed", range(5))
def test_split_properties_on_random_logs(seed):
  rng = np.random.default_rng(seed)
  log = _random_log(rng)
  f = 0.2
  s = split_lib.temporal_split(log, f=f)
  # Independent pure-Python reference for T and the item sets.
  first = {}
  for x, t in zip(log.item.tolist(), log.timestamp.tolist()):
    first[x] = min(first.get(x, t), t)
  times = sorted(first.values())
  t_ref = times[int(np.floor((len(times) - 1) * (1 - f)))]
  assert s.t_split == t_ref
  assert set(s.test_items.tolist()) == {x for x, t in first.items() if t > t_ref}
  assert set(s.train_items.tolist()) == {x for x, t in first.items() if t <= t_ref}
  assert s.report["n_items_never_interacted"] == log.num_items - len(first)
  # Cold start: no test item has a training interaction; every train item has one.
  assert not np.isin(s.train.item, s.test_items).any()
  assert set(s.train.item.tolist()) == set(s.train_items.tolist())
  assert (s.train.timestamp <= s.t_split).all()
  assert len(s.test_items) <= int(np.ceil((len(times) - 1) * f))


def test_split_rejects_bad_f():
  log = _log([0], [0], [0])
  with pytest.raises(ValueError, match="f must lie"):
    split_lib.temporal_split(log, f=1.0)


def test_validation_split_stays_inside_training_period():
  rng = np.random.default_rng(3)
  log = _random_log(rng, n=200, users=10, items=40, t_max=100)
  s = split_lib.temporal_split(log, f=0.1)
  v = split_lib.validation_split(log, s, f=0.1)
  assert v.t_split <= s.t_split
  assert (v.interactions.timestamp <= s.t_split).all()  # G of validation items: t ≤ T
  assert set(v.test_items.tolist()) <= set(s.train_items.tolist())
  assert not np.isin(v.test_items, s.test_items).any()
  assert (s.first_time[v.test_items] > v.t_split).all()
  assert (v.train.timestamp <= v.t_split).all()
  # Test items are unseen inside the training period (they are counted, not lost).
  assert v.report["n_items_never_interacted"] == (
      s.report["n_items_never_interacted"] + len(s.test_items))
  assert v.report["n_parent_test_items"] == len(s.test_items)


def test_real_ml100k_split(ml100k_dataset, ml100k_ratings_frame):
  ds, raw = ml100k_dataset, ml100k_ratings_frame
  log = ds.interactions
  assert (len(log), log.num_users, log.num_items, len(ds.items.category_names)) == (
      100_000, 943, 1682, 19)
  s = split_lib.temporal_split(log, f=0.05)
  # Independent pandas computation: first rating time per raw item id, 'lower' quantile.
  first = raw.assign(t=raw["timestamp"].astype(float)).groupby("item_id")["t"].min()
  t_ref = first.quantile(0.95, interpolation="lower")
  test_ref = set(first.index[first > t_ref])
  assert s.t_split == int(t_ref)
  assert set(log.item_ids[s.test_items].tolist()) == test_ref
  assert s.num_test_items == len(test_ref) == s.report["n_test_items"]
  assert s.report["n_train_items"] + s.num_test_items == 1682
  assert s.report["n_train_interactions"] == int(
      (raw["timestamp"].astype(float) <= t_ref).sum())


def test_personal_users_cut_and_centre():
  rng = np.random.default_rng(7)
  sizes = [5, 20, 21, 24, 25, 35, 199, 200, 60]  # users 0 and 7 are not eligible
  user = np.repeat(np.arange(len(sizes)), sizes)
  n = len(user)
  item = np.concatenate([rng.permutation(300)[:s] for s in sizes])
  t = rng.integers(0, 50, n)  # ties resolved by item index
  log = _log(user, item, t, num_items=300, rating=rng.integers(1, 6, n))
  users = split_lib.sample_personal_users(log, n_users=7, seed=0)
  assert [p.user for p in users] == [1, 2, 3, 4, 5, 6, 8]  # all eligible, sorted
  for p in users:
    rows = sorted(np.flatnonzero(log.user == p.user),
                  key=lambda r: (log.timestamp[r], log.item[r]))
    n_u = len(rows)
    n_fit = (4 * n_u) // 5  # ⌊0.8 n⌋ in integers
    assert p.n_interactions == n_u
    np.testing.assert_array_equal(p.fit_items, log.item[rows[:n_fit]])
    np.testing.assert_array_equal(p.query_items, log.item[rows[n_fit:]])
    r = log.rating[rows[:n_fit]].astype(float)
    np.testing.assert_allclose(p.fit_ratings, r - r.mean())
    assert p.user_mean == pytest.approx(r.mean())
  assert {p.n_interactions: len(p.query_items) for p in users}[21] == 5  # ⌈21/5⌉


def test_personal_users_seeded_and_checked():
  rng = np.random.default_rng(1)
  user = np.repeat(np.arange(30), 25)
  log = _log(user, np.tile(np.arange(25), 30), rng.integers(0, 9, len(user)))
  a = split_lib.sample_personal_users(log, n_users=5, seed=11)
  b = split_lib.sample_personal_users(log, n_users=5, seed=11)
  c = split_lib.sample_personal_users(log, n_users=5, seed=12)
  assert [p.user for p in a] == [p.user for p in b]
  assert [p.user for p in a] != [p.user for p in c]
  with pytest.raises(ValueError, match="only 30 users"):
    split_lib.sample_personal_users(log, n_users=31, seed=0)
