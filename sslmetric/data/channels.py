"""Item channels for the towers, built from a dataset and a split.

Channels (row i = dense item index i, every item, cold ones too):

* `genres` (MULTI_HOT, float32 [I, G]): the multi-hot categories.
* `year` (NUMERIC, float32 [I, 1]): z = (year - μ_y) / σ_y with μ_y, σ_y the mean and
  (population) standard deviation over the items whose year is known; unknown years
  become 0 (= the mean) after standardising, and are counted.
* `avg_rating` (NUMERIC, float32 [I, 1]): with r̄ the global mean of the TRAINING ratings
  and r̄(x) the mean of x's training ratings,
      a(x) = (r̄(x) - r̄) / σ_a,   σ_a = std of r̄(x) - r̄ over items with training ratings.
  Items with no training rating (the cold / test items) get r̄, i.e. a(x) = 0, by default
  (`test_avg_rating_uses_future=False`, the protocol's default: no rating after T is
  read). With the flag on they get the mean of ALL their ratings (after T too), centred
  and scaled by the same r̄ and σ_a; items rated never at all still get 0. The report
  counts both.
* `title` (TEXT, float32 [I, E]): the given text embeddings; skipped (with the reason in
  the report) when none are given.
* `item_id` (ITEM_ID, int32 [I]): the dense index, for an embedding table.

`gp_targets` gives the GP's regression targets: y(x) = r̄(x) - mean_{x' train} r̄(x'),
the training items' average training ratings centred to mean zero.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from sslmetric.data.types import (Catalogue, Channel, ChannelKind, Dataset,
                                  Interactions)

CHANNEL_NAMES = ("genres", "year", "avg_rating", "title", "item_id")


def _item_means(interactions: Interactions, num_items: int) -> tuple:
  """(mean rating per item float64 [I] (NaN when unrated), count per item int64 [I])."""
  counts = np.bincount(interactions.item, minlength=num_items)
  sums = np.bincount(interactions.item, weights=interactions.rating.astype(np.float64),
                     minlength=num_items)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan), counts


def _check_same_vocab(dataset: Dataset, interactions: Interactions, what: str):
  if interactions.num_items != len(dataset.items.item_ids):
    raise ValueError(f"{what} has {interactions.num_items} items, the dataset "
                     f"{len(dataset.items.item_ids)}; pass interactions of this dataset")


def build_catalogue(dataset: Dataset, *, train_interactions: Interactions,
                    text_embeddings: Optional[np.ndarray] = None,
                    include: Sequence[str] = CHANNEL_NAMES,
                    test_avg_rating_uses_future: bool = False,
                    all_interactions: Optional[Interactions] = None) -> tuple:
  """Builds the channels listed in `include` (module docstring has the formulas).

  Args:
    dataset: the dataset (its `items` give genres, years; its `interactions` are the
      default for `all_interactions`).
    train_interactions: the interactions with t ≤ T.
    text_embeddings: float [I, E] title embeddings, row = item index, or None.
    include: channel names, in the order wanted.
    test_avg_rating_uses_future: let items without training ratings use ratings after T.
    all_interactions: the log read when the flag is on (default: dataset.interactions).

  Returns:
    (Catalogue, report): the report holds the channel names, skipped channels with the
    reason, the standardisation constants and the counts of filled-in values.
  """
  unknown = [name for name in include if name not in CHANNEL_NAMES]
  if unknown:
    raise ValueError(f"unknown channels {unknown}; known are {CHANNEL_NAMES}")
  items = dataset.items
  num_items = len(items.item_ids)
  _check_same_vocab(dataset, train_interactions, "train_interactions")
  channels = []
  report = {"skipped": {}}
  for name in include:
    if name == "genres":
      channels.append(Channel(
          "genres", ChannelKind.MULTI_HOT, np.asarray(items.categories, np.float32),
          f"multi-hot over {len(items.category_names)} categories"))
    elif name == "year":
      years = np.asarray(items.years, np.float64)
      known = ~np.isnan(years)
      if not known.any():
        report["skipped"]["year"] = "no item has a known release year"
        continue
      mu, sd = float(years[known].mean()), float(years[known].std())
      z = np.where(known, (years - mu) / (sd if sd > 0 else 1.0), 0.0)
      report.update(year_mean=mu, year_std=sd, year_missing_set_to_0=int((~known).sum()))
      channels.append(Channel("year", ChannelKind.NUMERIC,
                              z.astype(np.float32)[:, None],
                              "release year, standardised; unknown -> 0"))
    elif name == "avg_rating":
      if len(train_interactions) == 0:
        raise ValueError("no training interactions: the avg_rating channel is undefined")
      mean_i, _ = _item_means(train_interactions, num_items)  # r̄(x) on t ≤ T
      centre = float(train_interactions.rating.astype(np.float64).mean())  # r̄
      rated = ~np.isnan(mean_i)
      dev = mean_i - centre
      scale = float(dev[rated].std())
      scale = scale if scale > 0 else 1.0
      a = np.where(rated, dev / scale, 0.0)
      cold = ~rated
      from_future = np.zeros(num_items, bool)
      if test_avg_rating_uses_future:
        log = dataset.interactions if all_interactions is None else all_interactions
        _check_same_vocab(dataset, log, "all_interactions")
        mean_all, _ = _item_means(log, num_items)
        from_future = cold & ~np.isnan(mean_all)
        a = np.where(from_future, (mean_all - centre) / scale, a)
      report.update(
          avg_rating_center=centre, avg_rating_scale=scale,
          avg_rating_uses_future=bool(test_avg_rating_uses_future),
          avg_rating_items_without_train_ratings=int(cold.sum()),
          avg_rating_filled_from_future=int(from_future.sum()),
          avg_rating_set_to_train_mean=int((cold & ~from_future).sum()))
      channels.append(Channel(
          "avg_rating", ChannelKind.NUMERIC, a.astype(np.float32)[:, None],
          "mean training rating, centred and standardised; "
          + ("items without training ratings use all their ratings"
             if test_avg_rating_uses_future else "items without training ratings -> 0")))
    elif name == "title":
      if text_embeddings is None:
        report["skipped"]["title"] = "no text embeddings given"
        continue
      emb = np.asarray(text_embeddings)
      if emb.ndim != 2 or emb.shape[0] != num_items:
        raise ValueError(f"text_embeddings must be [{num_items}, E], got {emb.shape}")
      if not np.isfinite(emb).all():
        raise ValueError(f"text_embeddings has {int((~np.isfinite(emb)).sum())} "
                         "non-finite values")
      channels.append(Channel("title", ChannelKind.TEXT, emb.astype(np.float32),
                              f"title text embedding, width {emb.shape[1]}"))
    elif name == "item_id":
      channels.append(Channel("item_id", ChannelKind.ITEM_ID,
                              np.arange(num_items, dtype=np.int32), "dense item index"))
  report["channels"] = [c.name for c in channels]
  return Catalogue(item_ids=np.asarray(items.item_ids), channels=tuple(channels)), report


def gp_targets(dataset: Dataset, train_interactions: Interactions,
               train_items: np.ndarray) -> np.ndarray:
  """y(x) = r̄(x) - mean_{x'} r̄(x') for the training items x (float64 [n]).

  r̄(x) is x's mean TRAINING rating; the mean over the training items is subtracted so
  the GP's zero-mean prior fits. Every training item has a training rating by definition
  (its first interaction is at t ≤ T); one that has none is an error.
  """
  _check_same_vocab(dataset, train_interactions, "train_interactions")
  train_items = np.asarray(train_items)
  mean_i, _ = _item_means(train_interactions, len(dataset.items.item_ids))
  r = mean_i[train_items]
  if np.isnan(r).any():
    bad = np.asarray(dataset.items.item_ids)[train_items[np.isnan(r)]]
    raise ValueError(f"{len(bad)} training items have no training rating (e.g. item "
                     f"{bad[0]}); pass the split's train_items and train interactions")
  return r - r.mean()
