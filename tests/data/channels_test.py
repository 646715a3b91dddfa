"""Tests of the item channels and the GP targets."""

import numpy as np
import pandas as pd
import pytest

from sslmetric.data import channels
from sslmetric.data.types import ChannelKind, Dataset, Interactions, Items
from sslmetric.eval import split as split_lib


def _toy():
  """4 items; item 3 is rated only after T = 3, item 2 never; item 1 has no year."""
  items = Items(item_ids=np.array(["a", "b", "c", "d"]),
                titles=np.array(["A", "B", "C", "D"]),
                years=np.array([1990.0, np.nan, 2000.0, 1995.0]),
                categories=np.array([[1, 0], [1, 1], [0, 0], [0, 1]], bool),
                category_names=("g0", "g1"))
  log = Interactions(user=np.array([0, 1, 0, 1, 2, 2], np.int32),
                     item=np.array([0, 0, 1, 1, 0, 3], np.int32),
                     rating=np.array([5, 3, 2, 1, 4, 5], np.float32),
                     timestamp=np.array([1, 2, 3, 3, 5, 6]),
                     user_ids=np.array(["u0", "u1", "u2"]), item_ids=items.item_ids)
  ds = Dataset("toy", log, items, (1.0, 5.0))
  return ds, log.subset(log.timestamp <= 3)


def test_toy_channels_by_hand():
  ds, train = _toy()
  cat, report = channels.build_catalogue(ds, train_interactions=train)
  assert cat.names == ("genres", "year", "avg_rating", "item_id")
  assert report["skipped"] == {"title": "no text embeddings given"}
  np.testing.assert_array_equal(cat["genres"].values, ds.items.categories)
  assert cat["genres"].values.dtype == np.float32
  assert cat["genres"].kind is ChannelKind.MULTI_HOT
  # Years: known 1990, 2000, 1995 -> mean 1995, population std sqrt(50/3).
  sd = np.sqrt(((1990 - 1995) ** 2 + (2000 - 1995) ** 2 + 0) / 3)
  np.testing.assert_allclose(cat["year"].values[:, 0], [-5 / sd, 0, 5 / sd, 0],
                             rtol=1e-6)
  assert cat["year"].values.shape == (4, 1) and report["year_missing_set_to_0"] == 1
  # Training ratings: item 0 {5, 3}, item 1 {2, 1}; global mean 11/4.
  dev = np.array([4 - 2.75, 1.5 - 2.75])
  scale = dev.std()
  np.testing.assert_allclose(cat["avg_rating"].values[:, 0],
                             [dev[0] / scale, dev[1] / scale, 0, 0], rtol=1e-6)
  assert report["avg_rating_center"] == pytest.approx(2.75)
  assert report["avg_rating_items_without_train_ratings"] == 2
  assert report["avg_rating_set_to_train_mean"] == 2
  assert report["avg_rating_filled_from_future"] == 0
  np.testing.assert_array_equal(cat["item_id"].values, np.arange(4))
  assert cat["item_id"].values.dtype == np.int32


def test_future_ratings_flag_and_title():
  ds, train = _toy()
  emb = np.arange(12, dtype=np.float64).reshape(4, 3)
  cat, report = channels.build_catalogue(ds, train_interactions=train,
                                         text_embeddings=emb,
                                         include=("avg_rating", "title"),
                                         test_avg_rating_uses_future=True)
  assert cat.names == ("avg_rating", "title")
  dev = np.array([4 - 2.75, 1.5 - 2.75])
  # Item 3 gets its only (post-T) rating 5; item 2 is never rated and stays 0.
  np.testing.assert_allclose(cat["avg_rating"].values[2:, 0],
                             [0, (5 - 2.75) / dev.std()], rtol=1e-6)
  assert report["avg_rating_filled_from_future"] == 1
  assert report["avg_rating_set_to_train_mean"] == 1
  np.testing.assert_array_equal(cat["title"].values, emb.astype(np.float32))
  assert cat["title"].dim == 3
  with pytest.raises(ValueError, match="must be \\[4, E\\]"):
    channels.build_catalogue(ds, train_interactions=train, text_embeddings=emb[:3])
  with pytest.raises(ValueError, match="unknown channels"):
    channels.build_catalogue(ds, train_interactions=train, include=("plot",))


def test_gp_targets():
  ds, train = _toy()
  y = channels.gp_targets(ds, train, np.array([0, 1]))
  np.testing.assert_allclose(y, [4 - 2.75, 1.5 - 2.75])  # mean of (4, 1.5) is 2.75
  with pytest.raises(ValueError, match="no training rating"):
    channels.gp_targets(ds, train, np.array([0, 3]))


def test_real_ml100k_catalogue(shared_data_dir, ml100k_dataset, ml100k_ratings_frame):
  ds, raw = ml100k_dataset, ml100k_ratings_frame
  s = split_lib.temporal_split(ds.interactions, f=0.05)
  cat, report = channels.build_catalogue(ds, train_interactions=s.train)
  assert cat.num_items == 1682 and cat["genres"].dim == 19
  # Exactly the test items lack training ratings and sit at the training mean (0).
  assert report["avg_rating_items_without_train_ratings"] == s.num_test_items
  np.testing.assert_array_equal(cat["avg_rating"].values[s.test_items, 0], 0.0)
  train_vals = cat["avg_rating"].values[s.train_items, 0].astype(np.float64)
  assert np.std(train_vals) == pytest.approx(1.0, rel=1e-5)
  # Independent pandas: item means over ratings with t <= T, centred by their global mean.
  t = raw["timestamp"].astype(float)
  tr = raw[t <= s.t_split].assign(r=lambda d: d["rating"].astype(float))
  means = tr.groupby("item_id")["r"].mean() - tr["r"].mean()
  want = (means / means.std(ddof=0)).reindex(ds.items.item_ids[s.train_items])
  np.testing.assert_allclose(train_vals, want.to_numpy(), rtol=1e-5, atol=1e-6)
  # Independent pandas: no release_year and no "(YYYY)" in the title (the loader falls
  # back to the title's year, e.g. for RecBole's release_year "V").
  item = pd.read_csv(shared_data_dir / "ml-100k" / "ml-100k.item", sep="\t", dtype=str,
                     keep_default_na=False)
  no_year_column = pd.to_numeric(item.iloc[:, 2], errors="coerce").isna()
  no_year_in_title = ~item.iloc[:, 1].str.contains(r"\(\d{4}\)")
  missing_years = int((no_year_column & no_year_in_title).sum())
  assert report["year_missing_set_to_0"] == missing_years
  y = channels.gp_targets(ds, s.train, s.train_items)
  assert y.shape == (len(s.train_items),) and abs(y.mean()) < 1e-12
