"""Tests for sslmetric.data.registry: names, user directories, the summary, real ML-100K."""

import datetime
import json
import shutil

import numpy as np
import pytest

from sslmetric.data import registry, tables, yelp
from sslmetric.data.types import DataError


@pytest.fixture
def home(shared_data_dir, tmp_path):
  """A data home whose ml-100k/ holds the real RecBole files (the cache route)."""
  (tmp_path / "ml-100k").mkdir()
  for name in ("ml-100k.inter", "ml-100k.item", "ml-100k.user"):
    shutil.copy(shared_data_dir / "ml-100k" / name, tmp_path / "ml-100k" / name)
  return tmp_path


def test_real_ml100k_facts(home):
  ds = registry.load_dataset("ml-100k", data_dir=str(home))
  s = registry.summarize(ds)
  assert (s["interactions"], s["users"], s["items"], s["genres"]) == (100_000, 943,
                                                                      1_682, 19)
  assert (s["rating_min"], s["rating_max"]) == (1.0, 5.0)
  assert s["rating_scale"] == (1.0, 5.0)
  assert (s["first_date"], s["last_date"]) == ("1997-09-20", "1998-04-22")
  assert s["items_without_interactions"] == 0 and s["users_without_interactions"] == 0
  assert s["report"][tables.DUPLICATE_RULE] == 0
  assert set(np.unique(ds.interactions.rating)) == {1, 2, 3, 4, 5}
  lines = registry.summary_lines(ds)
  assert "100,000 interactions, 943 users, 1,682 items" in lines[1]
  assert lines[-len(ds.report.entries):] == ds.report.lines()


def test_summarize_against_hand_counts(tmp_path):
  d = tmp_path / "mine"
  d.mkdir()
  (d / "ratings.dat").write_text("1::1::5::86400\n1::2::4::172800\n2::1::2::259200\n")
  (d / "movies.dat").write_text("1::A (1990)::Drama\n2::B::Comedy|Drama\n3::C (2001)::\n")
  ds = registry.load_dataset(f"movielens_dir:{d}")
  s = registry.summarize(ds)
  assert (s["users"], s["items"], s["interactions"]) == (2, 3, 3)
  assert s["density"] == pytest.approx(3 / 6)
  assert s["items_without_interactions"] == 1
  assert s["rating_mean"] == pytest.approx((5 + 4 + 2) / 3)
  assert (s["first_date"], s["last_date"]) == ("1970-01-02", "1970-01-04")
  assert s["time_span_days"] == pytest.approx(2.0)
  assert s["genre_names"] == ("Comedy", "Drama")
  assert s["items_without_genre"] == 1 and s["items_with_year"] == 2
  assert s["source"] == str(d) and s["name"] == "mine"


def test_path_argument_sets_format_and_scale(tmp_path):
  d = tmp_path / "anything"
  d.mkdir()
  (d / "ratings.dat").write_text("1::1::4.5::10\n")
  (d / "movies.dat").write_text("1::A (1990)::Drama\n")
  with pytest.raises(DataError, match=r"ratings\.dat:1: field 'rating': 4\.5 .*1\.\.5"):
    registry.load_dataset("ml-1m", path=d)  # ML-1M is whole stars
  ds = registry.load_dataset("ml-10m", path=d)
  assert ds.name == "ml-10m" and ds.rating_scale == (0.5, 5.0)
  assert registry.load_dataset("movielens", path=d).rating_scale == (0.5, 5.0)


def test_named_release_from_the_data_home(tmp_path):
  d = tmp_path / "ml-25m"
  d.mkdir()
  (d / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,3.5,10\n")
  (d / "movies.csv").write_text('movieId,title,genres\n1,"Heat, The (1995)",Action\n')
  ds = registry.load_dataset("ml-25m", data_dir=str(tmp_path))
  assert ds.items.titles[0] == "Heat, The" and ds.rating_scale == (0.5, 5.0)


def test_ml10m_folder_name_in_the_data_home(tmp_path):
  d = tmp_path / "ml-10M100K"  # the folder inside GroupLens' ml-10m.zip
  d.mkdir()
  (d / "ratings.dat").write_text("1::1::3.5::10\n")
  (d / "movies.dat").write_text("1::A (1990)::Drama\n")
  ds = registry.load_dataset("ml-10m", data_dir=str(tmp_path))
  assert ds.source == str(d) and ds.interactions.rating[0] == 3.5


def test_yelp_by_name_and_dir(tmp_path):
  with pytest.raises(DataError) as e:
    registry.load_dataset("yelp", data_dir=str(tmp_path))
  assert str(tmp_path / "yelp") in str(e.value) and yelp.REVIEW_FILE in str(e.value)
  d = tmp_path / "yelp"
  d.mkdir()
  (d / yelp.BUSINESS_FILE).write_text(json.dumps(
      {"business_id": "b", "name": "B", "categories": "Food"}) + "\n")
  (d / yelp.REVIEW_FILE).write_text("".join(json.dumps(
      {"user_id": u, "business_id": "b", "stars": 4.0, "date": "2020-01-01 10:00:00"})
                                            + "\n" for u in ("x", "y", "z")))
  a = registry.load_dataset("yelp", data_dir=str(tmp_path), max_reviews=2)
  b = registry.load_dataset(f"yelp_dir:{d}")
  assert (len(a.interactions), len(b.interactions)) == (2, 3)
  ts = datetime.datetime(2020, 1, 1, 10, tzinfo=datetime.timezone.utc).timestamp()
  assert b.interactions.timestamp[0] == int(ts)


def test_unknown_names(tmp_path):
  with pytest.raises(ValueError, match="unknown dataset 'ml-3m'"):
    registry.load_dataset("ml-3m", data_dir=str(tmp_path))
  with pytest.raises(ValueError, match="needs path="):
    registry.load_dataset("movielens")
