"""Noisy co-interaction pairs for the SIAMESE (Eq. 2) and SPE baselines (App. A.1).

Each user's training interactions are put in time order s_u(0), …, s_u(n_u - 1) (ties by
item index, :func:`~sslmetric.eval.split.user_time_order`). For an anchor position i,

    positives: s_u(i + o), o ~ Uniform{1, …, min(κ, n_u - 1 - i)}  (y = 0, similar)
    negatives: z ~ Uniform(train_items)                              (y = 1, dissimilar)

drawn independently with replacement, `num_pos` and `num_neg` per anchor. The forward
window is truncated at the end of the sequence. The pairs are "noisy": a negative may
happen to co-occur with the anchor, or equal it; that is the paper's sampler.

Anchors. Positions with a non-empty forward window (i ≤ n_u - 2) are eligible, so a user
with a single training interaction contributes none. Two rules:

* per user (default, `anchors_per_user=1`): every user with n_u ≥ 2 gets
  `anchors_per_user` anchors, i ~ Uniform{0, …, n_u - 2} independently (with
  replacement) — every user weighs the same. Call once per epoch with a fresh seed.
* `num_anchors=m`: m anchors drawn uniformly over all eligible positions of the log —
  users weigh by their activity.

Output order: anchor by anchor (users in index order for the per-user rule), each
anchor's `num_pos` positives then its `num_neg` negatives. Shuffle before batching.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from sslmetric.data.types import Interactions
from sslmetric.eval.split import user_time_order


class NoisyPairs(NamedTuple):
  """P = (#anchors) · (num_pos + num_neg) labelled item pairs."""
  a: np.ndarray  # int32 [P] anchor item indices
  b: np.ndarray  # int32 [P] partner item indices
  y: np.ndarray  # int32 [P] 0 = similar (forward window), 1 = dissimilar (uniform)


def sample_noisy_pairs(train_interactions: Interactions, *, train_items: np.ndarray,
                       kappa: int = 10, num_pos: int = 5, num_neg: int = 5,
                       anchors_per_user: Optional[int] = None,
                       num_anchors: Optional[int] = None, seed: int) -> NoisyPairs:
  """Samples anchors, forward-window positives and uniform negatives (module docstring).

  Args:
    train_interactions: the training log (t ≤ T).
    train_items: int [n] the items negatives are drawn from (the training items).
    kappa: κ ≥ 1, the forward window length.
    num_pos: positives per anchor.
    num_neg: negatives per anchor.
    anchors_per_user: anchors per user with ≥ 2 interactions (default 1 when
      `num_anchors` is not given).
    num_anchors: total anchors drawn uniformly over eligible positions instead.
    seed: seed of `np.random.default_rng`; equal seeds give equal pairs.

  Returns:
    :class:`NoisyPairs` (a, b, y), int32 arrays.
  """
  if anchors_per_user is not None and num_anchors is not None:
    raise ValueError("give anchors_per_user or num_anchors, not both")
  if num_anchors is None and anchors_per_user is None:
    anchors_per_user = 1
  if kappa < 1 or num_pos < 0 or num_neg < 0:
    raise ValueError(f"need kappa >= 1, num_pos >= 0, num_neg >= 0; got {kappa}, "
                     f"{num_pos}, {num_neg}")
  train_items = np.asarray(train_items)
  if num_neg > 0 and len(train_items) == 0:
    raise ValueError("no training items to draw negatives from")
  rng = np.random.default_rng(seed)

  order = user_time_order(train_interactions)
  user = train_interactions.user[order]
  item = train_interactions.item[order]
  n = len(order)
  change = np.flatnonzero(np.diff(user)) + 1
  seg_start = np.concatenate([[0], change]) if n else np.zeros(0, np.int64)
  seg_len = np.diff(np.concatenate([seg_start, [n]])) if n else np.zeros(0, np.int64)

  if num_anchors is None:
    # Per-user rule: users with n_u ≥ 2, `anchors_per_user` each, i ~ U{0..n_u-2}.
    ok = seg_len >= 2
    starts = np.repeat(seg_start[ok], anchors_per_user)
    lens = np.repeat(seg_len[ok], anchors_per_user)
    pos = starts + rng.integers(0, lens - 1) if len(lens) else starts
  else:
    # Uniform over eligible positions: every position but the last of its user.
    last = np.concatenate([seg_start[1:] - 1, [n - 1]]) if n else np.zeros(0, np.int64)
    eligible = np.setdiff1d(np.arange(n), last)
    if len(eligible) == 0:
      raise ValueError("no user has two training interactions; no anchors possible")
    pos = eligible[rng.integers(0, len(eligible), size=num_anchors)]
    lens = np.repeat(seg_len, seg_len)[pos]
    starts = np.repeat(seg_start, seg_len)[pos]
  m = len(pos)
  # Forward window length w = min(κ, n_u - 1 - i) ≥ 1 for i relative to the user's start.
  w = np.minimum(kappa, starts + lens - 1 - pos)  # [m]
  offsets = 1 + rng.integers(0, np.repeat(w, num_pos)).reshape(m, num_pos)  # [m, h]
  positives = item[pos[:, None] + offsets]  # [m, num_pos]
  negatives = rng.choice(train_items, size=(m, num_neg)) if num_neg else (
      np.zeros((m, 0), item.dtype))
  a = np.repeat(item[pos], num_pos + num_neg)
  b = np.concatenate([positives, negatives], axis=1).reshape(-1)
  y = np.tile(np.r_[np.zeros(num_pos), np.ones(num_neg)], m)
  return NoisyPairs(a=a.astype(np.int32), b=b.astype(np.int32), y=y.astype(np.int32))
