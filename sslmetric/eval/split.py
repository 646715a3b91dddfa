"""The temporal cold-start split, its validation carve-out and the personal protocol.

METHOD.md §3. Let t₀(x) = min{t : (u, x, r, t) in the log} be item x's first-interaction
time, defined for the items that occur in the log. With f = 0.05,

    T = Q_{1-f}({t₀(x)}),                 the (1 - f) quantile, numpy method 'lower',
    train interactions  = {(u, x, r, t) : t ≤ T},
    train items         = {x : t₀(x) ≤ T},
    test items          = {x : t₀(x) > T},   (cold start: no interaction of x has t ≤ T)

and items that never occur in the log are neither (counted in the report).

Why 'lower': the 'lower' quantile of n sorted values s₀ ≤ … ≤ s_{n-1} is s_j with
j = ⌊(n - 1)(1 - f)⌋, an observed first-interaction time (integer seconds, so `t ≤ T` is
exact and no interpolated time lies between two events). Of the two observed-value
choices it keeps more items in the test set: the test set holds at most n - 1 - j =
⌈(n - 1) f⌉ items, fewer only when first times tie at T. On MovieLens-100K this gives the
85 items first rated last (≈ 5% of 1,682).

Per-user time order (used by the ground truth, the noisy pairs and the personal
protocol): a user's interactions sorted by (timestamp, item index) — the item index breaks
the many (user, timestamp) ties deterministically.
"""

from __future__ import annotations

import dataclasses
import fractions

import numpy as np

from sslmetric.data.types import Interactions

QUANTILE_METHOD = "lower"


def user_time_order(interactions: Interactions) -> np.ndarray:
  """Row permutation sorting the log by (user, timestamp, item index).

  Returns:
    int64 [N] `order` such that `interactions.user[order]` is non-decreasing and, within a
    user, rows are in time order with ties broken by the lower item index first.
  """
  # np.lexsort sorts by the LAST key first: user, then timestamp, then item.
  return np.lexsort((interactions.item, interactions.timestamp, interactions.user))


def first_interaction_times(interactions: Interactions) -> np.ndarray:
  """t₀(x) = min over x's interactions of the timestamp; -1 for items never interacted.

  Returns:
    int64 [I] first-interaction time per item index (-1 when the item is not in the log).
  """
  t0 = np.full(interactions.num_items, np.iinfo(np.int64).max, np.int64)
  np.minimum.at(t0, interactions.item, interactions.timestamp.astype(np.int64))
  t0[t0 == np.iinfo(np.int64).max] = -1
  return t0


@dataclasses.dataclass(frozen=True)
class Split:
  """A temporal split of one interaction log.

  Attributes:
    t_split: T, the last training timestamp (interactions with t ≤ T are training).
    f: the fraction used for the quantile.
    interactions: the log the split was made from; the ground truth G(x) of the test
      items is computed from it (all of it, METHOD.md §3).
    train: the interactions with timestamp ≤ T (same vocabularies / indices).
    train_mask: bool [N], which rows of `interactions` are training rows.
    train_items: int32 [n_train] sorted item indices with t₀(x) ≤ T.
    test_items: int32 [n_test] sorted item indices with t₀(x) > T.
    first_time: int64 [I] t₀(x) per item, -1 for items never interacted.
    report: counts (interactions, train interactions, items, train / test items, items
      never interacted) and the settings (T, f, quantile method).
  """
  t_split: int
  f: float
  interactions: Interactions
  train: Interactions
  train_mask: np.ndarray
  train_items: np.ndarray
  test_items: np.ndarray
  first_time: np.ndarray
  report: dict

  @property
  def num_test_items(self) -> int:
    return len(self.test_items)


def temporal_split(interactions: Interactions, *, f: float = 0.05) -> Split:
  """Cold-start split at T = the (1 - f) 'lower' quantile of first-interaction times.

  Args:
    interactions: the whole log.
    f: fraction of (interacted) items, by first-interaction time, to hold out; 0 < f < 1.

  Returns:
    A :class:`Split`; see the module docstring for the rule.
  """
  if not 0.0 < f < 1.0:
    raise ValueError(f"f must lie in (0, 1), got {f}")
  if len(interactions) == 0:
    raise ValueError("cannot split an empty interaction log")
  t0 = first_interaction_times(interactions)  # [I]
  seen = t0 >= 0
  # T = Q_{1-f}(t₀) over interacted items, an observed time (method 'lower').
  t_split = int(np.quantile(t0[seen], 1.0 - f, method=QUANTILE_METHOD))
  train_mask = interactions.timestamp <= t_split
  train_items = np.flatnonzero(seen & (t0 <= t_split)).astype(np.int32)
  test_items = np.flatnonzero(seen & (t0 > t_split)).astype(np.int32)
  report = {
      "t_split": t_split,
      "f": float(f),
      "quantile_method": QUANTILE_METHOD,
      "n_interactions": int(len(interactions)),
      "n_train_interactions": int(train_mask.sum()),
      "n_items": int(interactions.num_items),
      "n_train_items": int(len(train_items)),
      "n_test_items": int(len(test_items)),
      "n_items_never_interacted": int((~seen).sum()),
  }
  return Split(t_split=t_split, f=float(f), interactions=interactions,
               train=interactions.subset(train_mask), train_mask=train_mask,
               train_items=train_items, test_items=test_items, first_time=t0,
               report=report)


def validation_split(interactions: Interactions, split: Split, *,
                     f: float = 0.05) -> Split:
  """The same rule applied inside the training period, for choosing settings.

  Only the training interactions (t ≤ T) are used: T_val = Q_{1-f}(t₀(x) : t₀(x) ≤ T);
  validation items are the train items with t₀(x) > T_val, and a model tuned on them
  sees only interactions with t ≤ T_val. Their ground truth must be computed from the
  returned split's `interactions` (= the training period), so nothing after T — and no
  test item — is ever looked at. The test items of `split` have no interaction at
  t ≤ T and are counted as `n_items_never_interacted` of the returned split (the report's
  `n_parent_test_items` says how many of those they are).

  Args:
    interactions: the whole log `split` was made from (checked for consistency).
    split: the test split.
    f: fraction of training items held out for validation.

  Returns:
    A :class:`Split` whose `test_items` are the validation items and `train` the
    interactions up to T_val.
  """
  if len(interactions) != len(split.interactions):
    raise ValueError(f"the log has {len(interactions)} rows but the split was made "
                     f"from one with {len(split.interactions)}")
  val = temporal_split(split.train, f=f)
  report = dict(val.report)
  report["parent_t_split"] = split.t_split
  report["n_parent_test_items"] = int(len(split.test_items))
  return dataclasses.replace(val, report=report)


@dataclasses.dataclass(frozen=True)
class PersonalUser:
  """One user of the personal protocol (METHOD.md §3, last bullet).

  The user's n interactions in time order (timestamp, item index) are cut at
  n_fit = ⌊fit_fraction · n⌋ (exact rational arithmetic; 0.8 → n_fit = ⌊4n/5⌋, so the
  query part holds n - n_fit = ⌈n/5⌉ items): positions [0, n_fit) fit w_u and
  [n_fit, n) are the query items.

  Attributes:
    user: dense user index.
    user_id: raw user id.
    n_interactions: n.
    fit_items: int32 [n_fit] item indices, time order.
    fit_ratings: float64 [n_fit] r - r̄_u, centred by the mean r̄_u over the fit part.
    user_mean: r̄_u.
    query_items: int32 [n - n_fit] item indices, time order.
  """
  user: int
  user_id: str
  n_interactions: int
  fit_items: np.ndarray
  fit_ratings: np.ndarray
  user_mean: float
  query_items: np.ndarray


def _num_fit(n: int, fit_fraction: float) -> int:
  """⌊fit_fraction · n⌋ in exact arithmetic (0.8 is 4/5, not 0.8000000000000000444)."""
  return int(fractions.Fraction(str(fit_fraction)) * n // 1)


def sample_personal_users(interactions: Interactions, *, n_users: int = 20,
                          min_interactions: int = 20, max_interactions: int = 200,
                          fit_fraction: float = 0.8, seed: int) -> list:
  """Samples users with min_interactions ≤ n < max_interactions and cuts their sequences.

  Eligible users are drawn without replacement by `np.random.default_rng(seed)` from the
  sorted list of eligible user indices; the result is sorted by user index.

  Args:
    interactions: the log (usually all of it; the protocol is per user).
    n_users: how many users to sample.
    min_interactions: smallest n allowed (inclusive).
    max_interactions: bound on n (exclusive).
    fit_fraction: share of each sequence, from its start, that fits w_u.
    seed: the sampling seed.

  Returns:
    list of :class:`PersonalUser`, ordered by user index.
  """
  if not 0.0 < fit_fraction < 1.0:
    raise ValueError(f"fit_fraction must lie in (0, 1), got {fit_fraction}")
  counts = np.bincount(interactions.user, minlength=interactions.num_users)  # [U]
  eligible = np.flatnonzero((counts >= min_interactions) & (counts < max_interactions))
  if len(eligible) < n_users:
    raise ValueError(f"only {len(eligible)} users have {min_interactions} <= n < "
                     f"{max_interactions} interactions; asked for {n_users}")
  rng = np.random.default_rng(seed)
  chosen = np.sort(rng.choice(eligible, size=n_users, replace=False))
  order = user_time_order(interactions)
  users_sorted = interactions.user[order]
  starts = np.searchsorted(users_sorted, chosen, side="left")
  out = []
  for u, s in zip(chosen, starts):
    n = int(counts[u])
    rows = order[s:s + n]  # the user's rows in time order
    n_fit = _num_fit(n, fit_fraction)
    if n_fit < 1 or n_fit >= n:
      raise ValueError(f"user {interactions.user_ids[u]} with {n} interactions leaves an "
                       f"empty fit or query part at fit_fraction={fit_fraction}")
    r = interactions.rating[rows[:n_fit]].astype(np.float64)
    mean = float(r.mean())
    out.append(PersonalUser(
        user=int(u), user_id=str(interactions.user_ids[u]), n_interactions=n,
        fit_items=interactions.item[rows[:n_fit]].astype(np.int32),
        fit_ratings=r - mean, user_mean=mean,
        query_items=interactions.item[rows[n_fit:]].astype(np.int32)))
  return out
