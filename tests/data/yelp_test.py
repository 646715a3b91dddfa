"""Tests for sslmetric.data.yelp on generated JSON-lines files in the Yelp layout."""

import calendar
import datetime
import json

import numpy as np
import pytest

from sslmetric.data import tables, yelp
from sslmetric.data.types import DataError

BUSINESSES = [
    {"business_id": "zB", "name": "Pizza Place", "categories": "Restaurants, Pizza",
     "stars": 4.0, "city": "X"},
    {"business_id": "aA", "name": "Nail Salon", "categories": "Beauty & Spas, Nail Salons"},
    {"business_id": "mM", "name": "Diner", "categories": "Restaurants, Diners, Breakfast"},
    {"business_id": "qQ", "name": "Nowhere", "categories": None},  # never reviewed
]
REVIEWS = [  # user, business, stars, date
    ("u9", "zB", 5.0, "2018-07-07 22:09:11"),
    ("u1", "aA", 1.0, "2012-01-03 15:28:18"),
    ("u9", "mM", 3.0, "2014-02-05 20:30:30"),
    ("u1", "zB", 4.0, "2015-01-04 00:01:03"),
    ("u9", "zB", 2.0, "2016-01-01 00:00:00"),  # duplicate (u9, zB), older: dropped
    ("u5", "mM", 4.0, "2019-12-31 23:59:59"),
]


def review_line(u, b, s, d, *, text="Great!"):
  return json.dumps({"review_id": f"r{u}{b}", "user_id": u, "business_id": b, "stars": s,
                     "useful": 0, "text": text, "date": d})


def write_yelp(d, *, businesses=BUSINESSES, reviews=REVIEWS, extra_review_lines=()):
  d.mkdir(parents=True, exist_ok=True)
  (d / yelp.BUSINESS_FILE).write_text("".join(json.dumps(b) + "\n" for b in businesses))
  lines = [review_line(*r) for r in reviews] + list(extra_review_lines)
  (d / yelp.REVIEW_FILE).write_text("".join(line + "\n" for line in lines))
  return d


def utc(date: str) -> int:
  return calendar.timegm(datetime.datetime.strptime(date, "%Y-%m-%d %H:%M:%S").timetuple())


def test_yelp_matches_rows_written(tmp_path):
  ds = yelp.load_yelp(write_yelp(tmp_path))
  inter, items = ds.interactions, ds.items
  # Sorted raw-id order (strings).
  np.testing.assert_array_equal(inter.user_ids, ["u1", "u5", "u9"])
  np.testing.assert_array_equal(inter.item_ids, ["aA", "mM", "qQ", "zB"])
  kept = [r for j, r in enumerate(REVIEWS) if j != 4]
  users, businesses = ["u1", "u5", "u9"], ["aA", "mM", "qQ", "zB"]
  np.testing.assert_array_equal(inter.user, [users.index(r[0]) for r in kept])
  np.testing.assert_array_equal(inter.item, [businesses.index(r[1]) for r in kept])
  np.testing.assert_array_equal(inter.rating, [r[2] for r in kept])
  np.testing.assert_array_equal(inter.timestamp, [utc(r[3]) for r in kept])
  assert inter.rating.dtype == np.float32 and inter.timestamp.dtype == np.int64
  np.testing.assert_array_equal(items.titles, ["Nail Salon", "Diner", "Nowhere",
                                               "Pizza Place"])
  assert np.isnan(items.years).all()
  # Categories ordered by business count (Restaurants: 2), ties by name.
  assert items.category_names == ("Restaurants", "Beauty & Spas", "Breakfast", "Diners",
                                  "Nail Salons", "Pizza")
  names = items.category_names
  for b in BUSINESSES:
    row = items.categories[businesses.index(b["business_id"])]
    want = {c.strip() for c in (b["categories"] or "").split(",") if c.strip()}
    assert {names[j] for j in np.flatnonzero(row)} == want
  assert ds.rating_scale == (1.0, 5.0)
  report = ds.report.as_dict()
  assert report[tables.DUPLICATE_RULE] == 1
  assert report[tables.NO_INTERACTIONS] == 1
  assert report["businesses with no categories in the file"] == 1
  assert report["categories cut by top_k_categories=None"] == 0


def test_chunk_size_does_not_change_the_result(tmp_path):
  d = write_yelp(tmp_path)
  a = yelp.load_yelp(d, chunk_lines=1)
  b = yelp.load_yelp(d, chunk_lines=4)
  c = yelp.load_yelp(d, chunk_lines=100_000)
  for f in ("user", "item", "rating", "timestamp", "user_ids", "item_ids"):
    np.testing.assert_array_equal(getattr(a.interactions, f), getattr(c.interactions, f))
    np.testing.assert_array_equal(getattr(b.interactions, f), getattr(c.interactions, f))


def test_top_k_categories_counts_the_cut(tmp_path):
  ds = yelp.load_yelp(write_yelp(tmp_path), top_k_categories=2)
  assert ds.items.category_names == ("Restaurants", "Beauty & Spas")
  report = ds.report.as_dict()
  assert report["categories cut by top_k_categories=2"] == 4
  # Assignments cut: Pizza, Nail Salons, Diners, Breakfast.
  assert report["business-category assignments cut by top_k_categories"] == 4
  assert report["businesses left with no category by the cut"] == 0


def test_max_reviews_reads_only_the_first_lines(tmp_path):
  d = write_yelp(tmp_path, extra_review_lines=['{"truncated": '])
  ds = yelp.load_yelp(d, max_reviews=3, chunk_lines=2)  # the bad last line is not read
  np.testing.assert_array_equal(ds.interactions.rating, [5, 1, 3])
  assert ds.report.as_dict()[
      "reviews read before max_reviews=3 stopped reading (later lines not read or "
      "counted)"] == 3


def test_blank_lines_are_counted(tmp_path):
  d = write_yelp(tmp_path, extra_review_lines=["", review_line("u7", "aA", 2.0,
                                                               "2011-01-01 00:00:00")])
  ds = yelp.load_yelp(d)
  assert ds.report.as_dict()[f"blank lines skipped in {yelp.REVIEW_FILE}"] == 1
  assert "u7" in ds.interactions.user_ids


@pytest.mark.parametrize("line, where", [
    ('{"user_id": "u1", "business_id": "aA", "stars": 3.0, "da', "truncated or invalid JSON"),
    ("[1, 2]", "not a JSON object"),
    (review_line("u1", "aA", 6.0, "2011-01-01 00:00:00"),
     r"field 'stars': 6 is not on the declared scale 1\.\.5"),
    (review_line("u1", "aA", 2.5, "2011-01-01 00:00:00"), r"field 'stars': 2\.5 is not on"),
    (review_line("u1", "aA", "5", "2011-01-01 00:00:00"), r"field 'stars': '5' is not a num"),
    (review_line("u1", "aA", 5.0, "01/02/2011"), r"field 'date': '01/02/2011' is not 'YYYY"),
    (review_line("u1", "aA", 5.0, "2011-02-30 00:00:00"),
     r"field 'date': '2011-02-30 00:00:00' is not a valid date"),
    (review_line("u1", "nope", 5.0, "2011-02-03 00:00:00"),
     r"field 'business_id': nope is not in yelp_academic_dataset_business\.json"),
    (json.dumps({"business_id": "aA", "stars": 5, "date": "2011-01-01 00:00:00"}),
     r"field 'user_id': missing"),
])
def test_review_errors_name_file_line_field(tmp_path, line, where):
  d = write_yelp(tmp_path, extra_review_lines=[line])
  line_no = len(REVIEWS) + 1
  with pytest.raises(DataError, match=rf"review\.json:{line_no}: .*{where}"):
    yelp.load_yelp(d, chunk_lines=4)  # the bad line is in the second chunk


def test_business_errors(tmp_path):
  d = write_yelp(tmp_path, businesses=BUSINESSES + [{"business_id": "aA", "name": "Again"}])
  with pytest.raises(DataError, match=r"business\.json:5: field 'business_id': aA also on "
                     r"line 2"):
    yelp.load_yelp(d)
  d = write_yelp(tmp_path, businesses=BUSINESSES + [{"business_id": "x", "categories": 3}])
  with pytest.raises(DataError, match=r"business\.json:5: field 'categories'"):
    yelp.load_yelp(d)
  (d / yelp.BUSINESS_FILE).write_text(json.dumps(BUSINESSES[0]) + "\n{oops\n")
  with pytest.raises(DataError, match=r"business\.json:2: truncated or invalid JSON"):
    yelp.load_yelp(d)


def test_missing_files_say_which_files_where(tmp_path):
  with pytest.raises(DataError) as e:
    yelp.load_yelp(tmp_path)
  msg = str(e.value)
  assert yelp.BUSINESS_FILE in msg and yelp.REVIEW_FILE in msg and str(tmp_path) in msg
  assert "yelp.com/dataset" in msg
