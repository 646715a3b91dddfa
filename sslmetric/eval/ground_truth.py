"""Ground truth G(x): the items interacted with near x in some user's time-ordered list.

METHOD.md §3. Sort every user's interactions by (timestamp, item index) and write user
u's sequence as s_u(0), s_u(1), …, with times t_u(·). For an item x,

    G(x) = { s_u(j) : s_u(i) = x, 0 < |i - j| ≤ W, some u } \\ {x}         (window W)
    G(x) = { s_u(j) : s_u(i) = x, j ≠ i, |t_u(i) - t_u(j)| ≤ H, some u } \\ {x}  (horizon)

over ALL interactions (not only training). x itself is excluded, also when a user
interacted with it twice. Items of interest whose G is empty are dropped and counted.

The computation is vectorised: one pass over the occurrences of the items of interest,
each expanded to its position range [lo, hi] in its user's sequence, in chunks so the
expanded (x, y) pairs never exceed `chunk_pairs` rows at a time.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from sslmetric.data.types import Interactions
from sslmetric.eval.split import PersonalUser, user_time_order


@dataclasses.dataclass(frozen=True)
class GroundTruth:
  """G(x) for a set of items, in CSR form.

  Attributes:
    items: int32 [q] sorted item indices with non-empty G; row j is G(items[j]).
    indptr: int64 [q + 1] row offsets into `indices`.
    indices: int32 [nnz] item indices, sorted within each row.
    dropped: int32 [d] sorted items of interest whose G was empty (not in `items`).
    window: W, or None when the horizon rule was used.
    horizon_seconds: H, or None for the window rule.
  """
  items: np.ndarray
  indptr: np.ndarray
  indices: np.ndarray
  dropped: np.ndarray
  window: Optional[int] = None
  horizon_seconds: Optional[int] = None

  def __len__(self) -> int:
    return len(self.items)

  def row(self, j: int) -> np.ndarray:
    """G(items[j]) as a sorted int32 array."""
    return self.indices[self.indptr[j]:self.indptr[j + 1]]

  def __getitem__(self, item: int) -> np.ndarray:
    """G(item) for an item index in `items` (KeyError otherwise)."""
    j = int(np.searchsorted(self.items, item))
    if j >= len(self.items) or self.items[j] != item:
      raise KeyError(f"item {item} is not among the items with a ground truth")
    return self.row(j)

  @property
  def sizes(self) -> np.ndarray:
    """|G(x)| per row, int64 [q]."""
    return np.diff(self.indptr)

  def as_dict(self) -> dict:
    """{item index: sorted int32 array of item indices}."""
    return {int(x): self.row(j) for j, x in enumerate(self.items)}

  def to_raw(self, item_ids: np.ndarray) -> dict:
    """{raw item id: list of raw item ids}, for :mod:`sslmetric.eval.results`."""
    ids = np.asarray(item_ids).astype(str)
    return {ids[x]: ids[self.row(j)].tolist() for j, x in enumerate(self.items)}

  @property
  def report(self) -> dict:
    return {"n_items_with_truth": int(len(self.items)),
            "n_items_dropped_empty_truth": int(len(self.dropped)),
            "window": self.window, "horizon_seconds": self.horizon_seconds}


def _expand_ranges(lo: np.ndarray, hi: np.ndarray) -> tuple:
  """For inclusive ranges [lo_r, hi_r]: (row of each element, the element)."""
  lengths = hi - lo + 1
  rows = np.repeat(np.arange(len(lo)), lengths)
  offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
  return rows, lo[rows] + offsets


def ground_truth(interactions: Interactions, items_of_interest: np.ndarray, *,
                 window: int = 10, horizon_seconds: Optional[int] = None,
                 chunk_pairs: int = 1 << 22) -> GroundTruth:
  """G(x) for every x in `items_of_interest` (module docstring has the definition).

  Args:
    interactions: the log to read the sequences from (all of it for the test items).
    items_of_interest: int [q] item indices (duplicates are merged; order is not kept —
      the result is sorted by item index).
    window: W ≥ 1, the positional window (ignored when `horizon_seconds` is given).
    horizon_seconds: H ≥ 0; when given, G uses |Δt| ≤ H in the same sequence instead of
      the positional window.
    chunk_pairs: at most about this many candidate pairs are materialised at once.

  Returns:
    A :class:`GroundTruth`; items with empty G are in `dropped`.
  """
  num_items = interactions.num_items
  interest = np.unique(np.asarray(items_of_interest, np.int64))
  if len(interest) and (interest[0] < 0 or interest[-1] >= num_items):
    raise ValueError(f"items_of_interest must lie in [0, {num_items})")
  if horizon_seconds is None and window < 1:
    raise ValueError(f"window must be >= 1, got {window}")
  if horizon_seconds is not None and horizon_seconds < 0:
    raise ValueError(f"horizon_seconds must be >= 0, got {horizon_seconds}")

  if len(interactions) == 0:  # nothing to read: every item of interest is dropped
    return GroundTruth(
        items=np.zeros(0, np.int32), indptr=np.zeros(1, np.int64),
        indices=np.zeros(0, np.int32), dropped=interest.astype(np.int32),
        window=None if horizon_seconds is not None else int(window),
        horizon_seconds=None if horizon_seconds is None else int(horizon_seconds))
  order = user_time_order(interactions)
  user = interactions.user[order].astype(np.int64)  # [N], non-decreasing
  item = interactions.item[order].astype(np.int64)  # [N]
  n = len(order)
  # Inclusive bounds of each position's user segment.
  change = np.flatnonzero(np.diff(user)) + 1
  seg_start = np.concatenate([[0], change])
  seg_len = np.diff(np.concatenate([seg_start, [n]]))
  start = np.repeat(seg_start, seg_len)  # [N]
  end = np.repeat(seg_start + seg_len - 1, seg_len)  # [N]

  is_interest = np.zeros(num_items, bool)
  is_interest[interest] = True
  occ = np.flatnonzero(is_interest[item])  # positions where some x of interest occurs

  if horizon_seconds is None:
    lo = np.maximum(occ - window, start[occ])
    hi = np.minimum(occ + window, end[occ])
  else:
    # key = rank(user) · span + (t - t_min) is non-decreasing in the sorted log, and
    # span > (t_max - t_min) + H keeps key ± H inside the user's own block.
    t = interactions.timestamp[order].astype(np.int64)
    t_rel = t - t.min()
    span = int(t_rel.max()) + int(horizon_seconds) + 1
    user_rank = np.repeat(np.arange(len(seg_start), dtype=np.int64), seg_len)
    if len(seg_start) * span >= np.iinfo(np.int64).max // 2:
      raise ValueError("time span x number of users overflows int64 keys")
    key = user_rank * span + t_rel
    lo = np.searchsorted(key, key[occ] - horizon_seconds, side="left")
    hi = np.searchsorted(key, key[occ] + horizon_seconds, side="right") - 1

  # Expand the ranges chunk by chunk: pairs (x = item[occ], y = item[pos]), y ≠ x.
  lengths = hi - lo + 1
  chunk = (np.cumsum(lengths) - 1) // chunk_pairs  # non-decreasing chunk id
  edges = np.concatenate([[0], np.flatnonzero(np.diff(chunk)) + 1, [len(occ)]])
  keys = []
  for a, b in zip(edges[:-1], edges[1:]):
    rows, pos = _expand_ranges(lo[a:b], hi[a:b])
    x = item[occ[a:b]][rows]
    y = item[pos]
    keep = y != x  # excludes position i itself and repeats of x
    keys.append(np.unique(x[keep] * num_items + y[keep]))
  keys = np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.int64)
  x = keys // num_items
  y = keys % num_items
  kept = np.unique(x)
  indptr = np.concatenate([[0], np.cumsum(np.bincount(
      np.searchsorted(kept, x), minlength=len(kept)))]).astype(np.int64)
  return GroundTruth(
      items=kept.astype(np.int32), indptr=indptr, indices=y.astype(np.int32),
      dropped=np.setdiff1d(interest, kept).astype(np.int32),
      window=None if horizon_seconds is not None else int(window),
      horizon_seconds=None if horizon_seconds is None else int(horizon_seconds))


def personal_ground_truth(interactions: Interactions, user: PersonalUser, *,
                          window: int = 10,
                          horizon_seconds: Optional[int] = None) -> GroundTruth:
  """G_u(x) for u's query items, read from u's own sequence only (same rule as G).

  Args:
    interactions: the log `user` was sampled from.
    user: a :class:`~sslmetric.eval.split.PersonalUser`.
    window: W.
    horizon_seconds: H (optional, as in :func:`ground_truth`).

  Returns:
    A :class:`GroundTruth` over the user's query items.
  """
  own = interactions.subset(interactions.user == user.user)
  if len(own) != user.n_interactions:
    raise ValueError(f"user {user.user_id} has {len(own)} interactions in this log, "
                     f"{user.n_interactions} when sampled; pass the same log")
  return ground_truth(own, user.query_items, window=window,
                      horizon_seconds=horizon_seconds)
