"""Yelp academic dataset: businesses are items, reviewers are users, stars are ratings.

Files (JSON lines, one object per line), both in one directory:

* `yelp_academic_dataset_business.json`: `business_id`, `name` (-> title),
  `categories` ("Restaurants, Pizza" or null -> multi-hot). Release year: unknown (NaN).
* `yelp_academic_dataset_review.json`: `user_id`, `business_id`, `stars` (1..5 whole
  stars), `date` ("YYYY-MM-DD HH:MM:SS", read as UTC -> unix seconds).

The review file (about 5 GB) is streamed: `chunk_lines` lines at a time are parsed into
Python lists, turned into numpy arrays and appended to a list of chunks; user ids are
encoded through a dict as they are first seen. Memory is the arrays (16 bytes a review),
the id dict and one chunk, never the file. The finished dataset follows the shared rules
of :mod:`sslmetric.data.tables`: dense indices in sorted raw-id order (as strings),
duplicates (user, business) keep the latest review (ties: the later line), every business
is an item, and the report counts every dropped or cut row.
"""

from __future__ import annotations

import json
import pathlib
import re
from typing import Optional

import numpy as np

from sslmetric.data.tables import (WHOLE_STARS, ItemTable, RatingScale, assemble_dataset,
                                   check_scale)
from sslmetric.data.types import Dataset, FilterReport, data_error

BUSINESS_FILE = "yelp_academic_dataset_business.json"
REVIEW_FILE = "yelp_academic_dataset_review.json"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_RESTART = ("re-download the file, or delete the line; if the file was cut short, pass "
            "max_reviews= to read only the lines before it")


def _json_object(path, lineno: int, text: str) -> dict:
  try:
    obj = json.loads(text)
  except json.JSONDecodeError as e:
    raise data_error(path, lineno, None, f"truncated or invalid JSON ({e.msg} at column "
                     f"{e.colno})", _RESTART) from None
  if not isinstance(obj, dict):
    raise data_error(path, lineno, None, "not a JSON object", _RESTART)
  return obj


def _string(path, lineno: int, obj: dict, field: str) -> str:
  value = obj.get(field)
  if not isinstance(value, str) or not value:
    raise data_error(path, lineno, field, f"missing or not a non-empty string ({value!r})",
                     _RESTART)
  return value


def read_businesses(path: pathlib.Path, *,
                    top_k_categories: Optional[int] = None) -> tuple:
  """Businesses as an ItemTable (file order) and a dict business_id -> row.

  Categories are ordered by decreasing number of businesses (ties by name); with
  `top_k_categories` only the first K are kept and the cut is counted.
  """
  ids, titles, cats, where, blank = [], [], [], [], 0
  with open(path, encoding="utf-8") as f:
    for lineno, text in enumerate(f, 1):
      if not text.strip():
        blank += 1
        continue
      obj = _json_object(path, lineno, text)
      ids.append(_string(path, lineno, obj, "business_id"))
      name = obj.get("name")
      titles.append(name if isinstance(name, str) else "")
      raw = obj.get("categories")
      if raw is not None and not isinstance(raw, str):
        raise data_error(path, lineno, "categories", f"{raw!r} is not a string or null",
                         "expected 'A, B, C'")
      cats.append([c.strip() for c in (raw or "").split(",") if c.strip()])
      where.append(lineno)
  if not ids:
    raise data_error(path, None, None, "no businesses", _RESTART)
  counts = {}
  for cs in cats:
    for c in set(cs):
      counts[c] = counts.get(c, 0) + 1
  names = sorted(counts, key=lambda c: (-counts[c], c))
  kept = names if top_k_categories is None else names[:top_k_categories]
  column = {c: j for j, c in enumerate(kept)}
  multi_hot = np.zeros((len(ids), len(kept)), bool)
  cut_assignments = 0
  for i, cs in enumerate(cats):
    for c in set(cs):
      if c in column:
        multi_hot[i, column[c]] = True
      else:
        cut_assignments += 1
  had = np.array([bool(cs) for cs in cats])
  report = (
      (f"blank lines skipped in {path.name}", blank),
      ("businesses with no categories in the file", int((~had).sum())),
      (f"categories cut by top_k_categories={top_k_categories}", len(names) - len(kept)),
      ("business-category assignments cut by top_k_categories", cut_assignments),
      ("businesses left with no category by the cut",
       int((had & ~multi_hot.any(1)).sum())),
  )
  table = ItemTable(ids=np.array(ids, dtype=str), titles=titles,
                    years=np.full(len(ids), np.nan), categories=multi_hot,
                    category_names=tuple(kept), lines=np.array(where, np.int64), path=path,
                    report=report)
  index = {}
  for row, (b, lineno) in enumerate(zip(ids, where)):
    if b in index:
      raise data_error(path, lineno, "business_id", f"{b} also on line {where[index[b]]}",
                       "each business must appear once; remove one of the lines")
    index[b] = row
  return table, index


def _finish_chunk(path, *, users, items, stars, dates, lines, scale) -> tuple:
  """Lists of one chunk -> arrays; the scale and calendar checks name the line."""
  rating = np.array(stars, np.float64)
  check_scale(rating, scale, path=path, line_of=lambda i: lines[i], field="stars")
  try:
    seconds = np.array(dates, dtype="datetime64[s]").astype(np.int64)
  except ValueError:
    for date, lineno in zip(dates, lines):
      try:
        np.datetime64(date, "s")
      except ValueError:
        raise data_error(path, lineno, "date", f"{date!r} is not a valid date and time",
                         "expected 'YYYY-MM-DD HH:MM:SS'; fix or remove the line") from None
    raise
  return (np.array(users, np.int32), np.array(items, np.int32), rating.astype(np.float32),
          seconds)


def stream_reviews(path: pathlib.Path, business_index: dict, *, chunk_lines: int = 100_000,
                   max_reviews: Optional[int] = None,
                   scale: RatingScale = WHOLE_STARS) -> dict:
  """Streams the review file in chunks of `chunk_lines` lines.

  Returns:
    dict with user_code int32 [N], user_vocab [U] (first-seen order), item_row int32 [N]
    (business rows in file order), rating float32 [N], timestamp int64 [N],
    blank_lines and reviews_read.
  """
  if chunk_lines < 1:
    raise ValueError(f"chunk_lines must be >= 1, got {chunk_lines}")
  user_codes = {}
  chunks = []
  users, items, stars, dates, lines = [], [], [], [], []
  blank = read = 0
  with open(path, encoding="utf-8") as f:
    for lineno, text in enumerate(f, 1):
      if max_reviews is not None and read >= max_reviews:
        break
      if not text.strip():
        blank += 1
        continue
      obj = _json_object(path, lineno, text)
      uid = _string(path, lineno, obj, "user_id")
      bid = _string(path, lineno, obj, "business_id")
      row = business_index.get(bid)
      if row is None:
        raise data_error(path, lineno, "business_id", f"{bid} is not in {BUSINESS_FILE}",
                         "use the business and review files of the same release")
      star = obj.get("stars")
      if isinstance(star, bool) or not isinstance(star, (int, float)):
        raise data_error(path, lineno, "stars", f"{star!r} is not a number",
                         "fix or remove the line")
      date = obj.get("date")
      if not isinstance(date, str) or not _DATE.fullmatch(date):
        raise data_error(path, lineno, "date", f"{date!r} is not 'YYYY-MM-DD HH:MM:SS'",
                         "fix or remove the line")
      code = user_codes.get(uid)
      if code is None:
        code = user_codes[uid] = len(user_codes)
      users.append(code)
      items.append(row)
      stars.append(star)
      dates.append(date)
      lines.append(lineno)
      read += 1
      if len(users) == chunk_lines:
        chunks.append(_finish_chunk(path, users=users, items=items, stars=stars,
                                    dates=dates, lines=lines, scale=scale))
        users, items, stars, dates, lines = [], [], [], [], []
  if users:
    chunks.append(_finish_chunk(path, users=users, items=items, stars=stars,
                                    dates=dates, lines=lines, scale=scale))
  if not chunks:
    raise data_error(path, None, None, "no reviews", _RESTART)
  user_code, item_row, rating, timestamp = (np.concatenate(c) for c in zip(*chunks))
  return dict(user_code=user_code, user_vocab=np.array(list(user_codes), dtype=str),
              item_row=item_row, rating=rating, timestamp=timestamp, blank_lines=blank,
              reviews_read=read)


def load_yelp(directory, *, max_reviews: Optional[int] = None,
              top_k_categories: Optional[int] = None, chunk_lines: int = 100_000,
              name: str = "yelp") -> Dataset:
  """Loads the Yelp academic dataset from `directory` (see the module docstring).

  Args:
    directory: folder holding BUSINESS_FILE and REVIEW_FILE.
    max_reviews: read only the first N reviews (quick runs); None reads all.
    top_k_categories: keep the K most frequent categories; None keeps all.
    chunk_lines: review lines parsed per chunk (bounds the transient memory).
    name: the Dataset's name.
  """
  d = pathlib.Path(directory)
  missing = [f for f in (BUSINESS_FILE, REVIEW_FILE) if not (d / f).is_file()]
  if missing:
    raise data_error(d, None, None, f"missing {', '.join(missing)}",
                     f"download the Yelp Open Dataset from https://www.yelp.com/dataset "
                     f"(its licence forbids redistribution, so sslmetric cannot fetch it) "
                     f"and put {BUSINESS_FILE} and {REVIEW_FILE} in {d}")
  items, index = read_businesses(d / BUSINESS_FILE, top_k_categories=top_k_categories)
  reviews = stream_reviews(d / REVIEW_FILE, index, chunk_lines=chunk_lines,
                           max_reviews=max_reviews)
  report = FilterReport().add(f"blank lines skipped in {REVIEW_FILE}",
                              reviews["blank_lines"])
  if max_reviews is not None:
    report = report.add(f"reviews read before max_reviews={max_reviews} stopped reading "
                        "(later lines not read or counted)", reviews["reviews_read"])
  for what, count in items.report:
    report = report.add(what, count)
  return assemble_dataset(name=name, source=str(d), user_code=reviews["user_code"],
                          user_vocab=reviews["user_vocab"], item_row=reviews["item_row"],
                          items=items, rating=reviews["rating"],
                          timestamp=reviews["timestamp"], rating_scale=WHOLE_STARS,
                          report=report)
