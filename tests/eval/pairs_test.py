"""Tests of the noisy co-interaction pair sampler (App. A.1)."""

import numpy as np
import pytest
import scipy.stats

from sslmetric.data.types import Interactions
from sslmetric.eval import pairs as pairs_lib


def _log(user, item, timestamp, *, num_items):
  user = np.asarray(user, np.int32)
  return Interactions(user=user, item=np.asarray(item, np.int32),
                      rating=np.ones(len(user), np.float32),
                      timestamp=np.asarray(timestamp, np.int64),
                      user_ids=np.array([f"u{u}" for u in range(int(user.max()) + 1)]),
                      item_ids=np.array([f"i{i}" for i in range(num_items)]))


def _disjoint_log(rng, sizes):
  """Users own disjoint item sets, so an (anchor, partner) pair names its user."""
  perm = rng.permutation(sum(sizes))
  user = np.repeat(np.arange(len(sizes)), sizes)
  return _log(user, perm, rng.integers(0, 6, len(user)), num_items=sum(sizes) + 3)


def _forward_windows(log, kappa):
  """{anchor item: set of items in its forward window} by sorting in pure Python."""
  seqs = {}
  for u, x, t in zip(log.user.tolist(), log.item.tolist(), log.timestamp.tolist()):
    seqs.setdefault(u, []).append((t, x))
  out = {}
  for seq in seqs.values():
    items = [x for _, x in sorted(seq)]
    for i, x in enumerate(items[:-1]):
      out[x] = set(items[i + 1:i + 1 + kappa])
  return out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kappa", [1, 3, 10])
def test_positives_lie_in_forward_window(seed, kappa):
  rng = np.random.default_rng(seed)
  sizes = [1, 2, 5, 12, 30]
  log = _disjoint_log(rng, sizes)
  train_items = np.arange(sum(sizes))
  a, b, y = pairs_lib.sample_noisy_pairs(log, train_items=train_items, kappa=kappa,
                                         num_pos=4, num_neg=3, anchors_per_user=6,
                                         seed=seed)
  windows = _forward_windows(log, kappa)
  n_anchor_users = sum(s >= 2 for s in sizes)  # a single interaction has no window
  assert len(a) == n_anchor_users * 6 * 7
  np.testing.assert_array_equal(y, np.tile([0] * 4 + [1] * 3, n_anchor_users * 6))
  for ai, bi in zip(a[y == 0], b[y == 0]):
    assert bi in windows[ai]
  assert np.isin(b[y == 1], train_items).all()
  assert all(ai in windows for ai in a)  # anchors are never a user's last item


def test_window_offsets_are_uniform_and_truncated():
  # One user, items 0..19 in time order; κ = 3.
  log = _log(np.zeros(20), np.arange(20), np.arange(20), num_items=20)
  a, b, y = pairs_lib.sample_noisy_pairs(log, train_items=np.arange(20), kappa=3,
                                         num_pos=1, num_neg=0, anchors_per_user=6000,
                                         seed=0)
  offset = b - a
  assert set(offset.tolist()) == {1, 2, 3}
  assert set(a.tolist()) == set(range(19))
  np.testing.assert_array_equal(offset[a == 18], 1)  # truncated at the end
  full = a < 17  # anchors with a full window: offsets uniform on {1, 2, 3}
  counts = np.bincount(offset[full], minlength=4)[1:]
  assert scipy.stats.chisquare(counts).pvalue > 1e-4
  # Anchors uniform over positions 0..18.
  assert scipy.stats.chisquare(np.bincount(a, minlength=19)).pvalue > 1e-4


def test_seeded_and_num_anchors_rule():
  rng = np.random.default_rng(9)
  log = _disjoint_log(rng, [3, 8, 1, 20])
  kw = dict(train_items=np.arange(32), kappa=4, num_pos=2, num_neg=2)
  p1 = pairs_lib.sample_noisy_pairs(log, seed=1, **kw)
  p2 = pairs_lib.sample_noisy_pairs(log, seed=1, **kw)
  p3 = pairs_lib.sample_noisy_pairs(log, seed=2, **kw)
  for u, v in zip(p1, p2):
    np.testing.assert_array_equal(u, v)
  assert any(not np.array_equal(u, v) for u, v in zip(p1, p3))
  assert len(p1.a) == 3 * 4  # default: one anchor per user with >= 2 interactions
  q = pairs_lib.sample_noisy_pairs(log, num_anchors=500, seed=3, **kw)
  assert len(q.a) == 500 * 4
  windows = _forward_windows(log, 4)
  assert all(bi in windows[ai] for ai, bi in zip(q.a[q.y == 0], q.b[q.y == 0]))
  # Activity weighting: the 20-interaction user owns 19 of 2 + 7 + 19 eligible anchors.
  share = np.mean(np.isin(q.a[::4], log.item[log.user == 3]))
  assert share == pytest.approx(19 / 28, abs=0.08)
  with pytest.raises(ValueError, match="not both"):
    pairs_lib.sample_noisy_pairs(log, anchors_per_user=1, num_anchors=5, seed=0, **kw)
