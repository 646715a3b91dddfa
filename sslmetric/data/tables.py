"""Format-independent rating and item tables, and the Dataset they assemble into.

Every loader (:mod:`sslmetric.data.movielens`, :mod:`sslmetric.data.yelp`) reads its files
into a :class:`RatingsTable` (or plain arrays) and an :class:`ItemTable`, then builds a
:class:`~sslmetric.data.types.Dataset` here, the same way for every source:

* **Id order.** Users and items get dense indices in *sorted raw-id order*: numerically
  when every raw id is an integer (MovieLens), else as strings. So two layouts of one
  catalogue give identical datasets, whatever the row order of the files.
* **Items** are every row of the item table, with or without interactions (those without
  are counted in the report, :data:`NO_INTERACTIONS`). A rating whose item is not in the
  item table is a :class:`~sslmetric.data.types.DataError` naming file, line and field.
* **Users** are those that appear in the ratings.
* **Duplicates.** For rows with the same (user, item) the one with the latest timestamp is
  kept; among equal timestamps, the later line of the file. The rest are counted
  (:data:`DUPLICATE_RULE`). Kept rows stay in file order.
* **Ratings** must lie on the declared scale (min, max, step), e.g. 1..5 in whole stars or
  0.5..5 in half stars (:class:`RatingScale`); anything else is an error naming the line.

Delimited rating files (:func:`read_ratings`) are parsed with pandas' C reader; if that
fails or finds anything odd, a line-by-line reader runs instead and either reads the file
(e.g. counting blank lines) or raises a :class:`DataError` naming the first bad line
(1-based, as an editor shows it).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import pathlib
from array import array
from typing import NamedTuple, Optional, Sequence

import numpy as np
import pandas as pd

from sslmetric.data.types import Dataset, FilterReport, Interactions, Items, data_error

DUPLICATE_RULE = ("duplicate (user, item) rows dropped (kept the latest timestamp; "
                  "ties: the later line)")
NO_INTERACTIONS = "items with no interactions (kept in the catalogue)"


class RatingScale(NamedTuple):
  """Declared rating scale: ratings r with low <= r <= high and (r - low) / step whole."""
  low: float
  high: float
  step: float


WHOLE_STARS = RatingScale(1.0, 5.0, 1.0)  # ML-100K, ML-1M, Yelp
HALF_STARS = RatingScale(0.5, 5.0, 0.5)  # ML-10M, 20M, 25M, latest


@dataclasses.dataclass(frozen=True)
class RatingsTable:
  """Rating rows as read, before id encoding and de-duplication.

  Attributes:
    user, item: [N] raw ids, int64 (or str where a RecBole token is not an integer).
    rating: float64 [N]. timestamp: int64 [N], unix seconds.
    path: the file. first_line: line of row 0. lines: int64 [N] line of each row, or None
      when rows are consecutive lines from `first_line`. blank_lines: blank lines skipped.
  """
  user: np.ndarray
  item: np.ndarray
  rating: np.ndarray
  timestamp: np.ndarray
  path: pathlib.Path
  first_line: int = 1
  lines: Optional[np.ndarray] = None
  blank_lines: int = 0

  def line_of(self, row: int) -> int:
    return int(self.lines[row]) if self.lines is not None else self.first_line + int(row)


@dataclasses.dataclass(frozen=True)
class ItemTable:
  """Item rows in file order: ids [I] (int64 or str), titles [I], years float64 [I],
  categories bool [I, G] with names [G], lines int64 [I], report: (what, count) pairs."""
  ids: np.ndarray
  titles: list
  years: np.ndarray
  categories: np.ndarray
  category_names: tuple
  lines: np.ndarray
  path: pathlib.Path
  report: tuple = ()


# --------------------------------------------------------------------------- text fields

def parse_int(text: str) -> int:
  """An integer field; integral floats such as "881250949.0" are accepted (as pandas does)."""
  try:
    return int(text)
  except ValueError:
    value = float(text)  # raises ValueError for non-numbers
    if not np.isfinite(value) or value != int(value):
      raise
    return int(value)


def read_text_lines(path: pathlib.Path) -> tuple:
  """(lines, encoding) of a small meta-data file: UTF-8 when it decodes, else latin-1.

  Splits on '\\n' only (latin-1 text may hold '\\x85', which `str.splitlines` would break
  on) and drops a '\\r' before it.
  """
  data = path.read_bytes()
  try:
    text, encoding = data.decode("utf-8"), "utf-8"
  except UnicodeDecodeError:
    text, encoding = data.decode("latin-1"), "latin-1"
  if text.startswith("\ufeff"):
    text = text[1:]
  lines = text.split("\n")
  if lines and lines[-1] == "":
    lines.pop()
  return [ln[:-1] if ln.endswith("\r") else ln for ln in lines], encoding


# --------------------------------------------------------------------------- rating files

# Field kinds of :func:`read_ratings` (see its docstring); _EMPTY is internal.
INT, FLOAT, TOKEN, ANY, _EMPTY = "int", "float", "token", "any", "empty"
_PANDAS_DTYPE = {INT: "int64", FLOAT: "float64", TOKEN: "int64", ANY: "object",
                 _EMPTY: "float32"}


def _read_fast(path, *, sep, kinds, skip, encoding) -> Optional[list]:
  """Columns via pandas' C reader, or None when anything is odd (the slow reader explains)."""
  if sep == "::":  # "1::2::3::4" read with ':' is 7 fields, every other one empty
    kinds = [k for kind in kinds for k in (kind, _EMPTY)][:-1]
    sep = ":"
  try:
    frame = pd.read_csv(path, sep=sep, header=None, skiprows=skip, engine="c",
                        dtype={j: _PANDAS_DTYPE[k] for j, k in enumerate(kinds)},
                        skip_blank_lines=False, quoting=csv.QUOTE_NONE, encoding=encoding,
                        na_filter=True)
  except (ValueError, OverflowError, pd.errors.ParserError, pd.errors.EmptyDataError,
          UnicodeDecodeError):
    return None
  if frame.shape[1] != len(kinds) or len(frame) == 0:
    return None
  columns = []
  for j, kind in enumerate(kinds):
    values = frame[j].to_numpy()
    if kind == _EMPTY:
      if not np.isnan(values).all():
        return None
    elif kind == FLOAT and np.isnan(values).any():  # a missing field: let the slow
      return None  # reader name it
    else:
      columns.append(values)
  return columns


def _read_slow(path, *, sep, names, kinds, skip, encoding) -> tuple:
  """Line-by-line reader: (columns, lines, blank_lines); a DataError at the first bad line."""
  cells = [[] for _ in kinds]
  lines = array("q")
  blank = 0
  lineno = 0
  fix = f"expected {len(kinds)} {sep!r}-separated fields ({', '.join(names)}); fix or " \
        "remove the line"
  try:
    with open(path, encoding=encoding, newline="") as f:
      for lineno, raw in enumerate(f, 1):
        if lineno <= skip:
          continue
        text = raw.rstrip("\r\n")
        if not text.strip():
          blank += 1
          continue
        parts = text.split(sep)
        if len(parts) != len(kinds):
          raise data_error(path, lineno, None, f"{len(parts)} fields", fix)
        for j, (name, kind, value) in enumerate(zip(names, kinds, parts)):
          if kind == INT:
            try:
              value = parse_int(value)
            except ValueError:
              raise data_error(path, lineno, name, f"{value!r} is not an integer",
                               "MovieLens ids and timestamps are integers (unix seconds); "
                               "fix or remove the line") from None
          elif kind == FLOAT:
            try:
              value = float(value)
            except ValueError:
              raise data_error(path, lineno, name, f"{value!r} is not a number",
                               "fix or remove the line") from None
          cells[j].append(value)
        lines.append(lineno)
  except UnicodeDecodeError as e:
    raise data_error(path, lineno + 1, None, f"not {encoding} text ({e.reason})",
                     "re-download the file") from None
  columns = []
  for kind, col in zip(kinds, cells):
    if kind == INT:
      columns.append(np.array(col, dtype=np.int64))
    elif kind == FLOAT:
      columns.append(np.array(col, dtype=np.float64))
    elif kind == ANY:
      columns.append(np.array(col, dtype=object))
    else:  # token: integers when every value is one, else strings
      try:
        columns.append(np.array([parse_int(v) for v in col], dtype=np.int64))
      except ValueError:
        columns.append(np.array(col, dtype=str))
  return columns, np.frombuffer(lines, dtype=np.int64).copy(), blank


def read_ratings(path, *, sep: str, fields: Sequence[tuple] = (
    ("user", INT), ("item", INT), ("rating", FLOAT), ("timestamp", INT)),
                 roles: Sequence[str] = ("user", "item", "rating", "timestamp"),
                 skip: int = 0, encoding: str = "latin-1") -> RatingsTable:
  """Reads a ratings table.

  Args:
    path: the file. sep: field separator ('\\t', ',', '::').
    fields: (name, kind) of every column in file order; kind is 'int', 'float', 'token'
      (an id kept as int64 when every value is an integer, else as str) or 'any' (unused).
    roles: the field names holding user, item, rating and timestamp.
    skip: header lines. encoding: text encoding.
  """
  path = pathlib.Path(path)
  names, kinds = [f[0] for f in fields], [f[1] for f in fields]
  columns = _read_fast(path, sep=sep, kinds=kinds, skip=skip, encoding=encoding)
  lines, blank = None, 0
  if columns is None:
    columns, lines, blank = _read_slow(path, sep=sep, names=names, kinds=kinds, skip=skip,
                                       encoding=encoding)
  by_name = dict(zip(names, columns))
  user, item, rating, timestamp = (by_name[r] for r in roles)
  if len(user) == 0:
    raise data_error(path, None, None, "no rating rows", "the file is empty; re-download it")
  return RatingsTable(user=user, item=item, rating=rating.astype(np.float64),
                      timestamp=timestamp.astype(np.int64), path=path, first_line=skip + 1,
                      lines=lines, blank_lines=blank)


def check_scale(rating: np.ndarray, scale: RatingScale, *, path, line_of,
                field: str = "rating") -> None:
  """Raises a DataError at the first rating off `scale` (NaN included)."""
  lo, hi, step = scale
  k = (rating - lo) / step
  ok = (rating >= lo) & (rating <= hi) & (np.abs(k - np.round(k)) < 1e-6)
  if not ok.all():
    i = int(np.argmin(ok))
    raise data_error(path, line_of(i), field,
                     f"{rating[i]:g} is not on the declared scale {lo:g}..{hi:g} in steps "
                     f"of {step:g}", "fix or remove the line, or pass rating_scale=(min, "
                     "max, step) if your data uses another scale")


def infer_scale(rating: np.ndarray) -> RatingScale:
  """For a user's own directory: whole stars 1..5 if every rating is whole, else half stars."""
  return WHOLE_STARS if np.all(rating == np.round(rating)) else HALF_STARS


def ratings_digest(table: RatingsTable) -> str:
  """sha256 of the canonical ratings text, the same for every layout of one catalogue.

  Rows (user, item, rating, timestamp) sorted in that order of precedence (ids
  numerically), each rendered as "user\\titem\\trating\\ttimestamp\\n" with the rating in
  `%g` form (3.0 -> "3", 3.5 -> "3.5").
  """
  user, item = table.user.astype(np.int64), table.item.astype(np.int64)
  order = np.lexsort((table.timestamp, table.rating, item, user))
  h = hashlib.sha256()
  rows = zip(user[order].tolist(), item[order].tolist(), table.rating[order].tolist(),
             table.timestamp[order].tolist())
  h.update("".join(f"{u}\t{i}\t{r:g}\t{t}\n" for u, i, r, t in rows).encode())
  return h.hexdigest()


# --------------------------------------------------------------------------- assembly

def id_order(ids: np.ndarray) -> np.ndarray:
  """Stable argsort of raw ids: numeric when all are integers (or digit strings)."""
  ids = np.asarray(ids)
  if ids.dtype.kind in "iu":
    return np.argsort(ids, kind="stable")
  strs = ids.astype(str)
  if len(strs) and all(s.isascii() and s.isdigit() and len(s) < 19 for s in strs.tolist()):
    return np.argsort(strs.astype(np.int64), kind="stable")
  return np.argsort(strs, kind="stable")


def assemble_dataset(*, name: str, source: str, user_code: np.ndarray,
                     user_vocab: np.ndarray, item_row: np.ndarray, items: ItemTable,
                     rating: np.ndarray, timestamp: np.ndarray, rating_scale: RatingScale,
                     report: FilterReport) -> Dataset:
  """Sorts ids, drops duplicates (:data:`DUPLICATE_RULE`) and builds the Dataset.

  Args:
    user_code: int [N] index into `user_vocab` [U] (raw ids, any order).
    item_row: int [N] row of `items` (file order). rating, timestamp: [N], file order.
    report: entries so far; the duplicate and no-interaction counts are appended.
  """
  # Items: file order -> sorted raw-id order; duplicates in the item file are errors.
  order = id_order(items.ids)
  sorted_ids = items.ids[order]
  same = np.flatnonzero(sorted_ids[1:] == sorted_ids[:-1])
  if len(same):
    a, b = sorted(items.lines[order[same[0]:same[0] + 2]])
    raise data_error(items.path, int(b), "item id", f"{sorted_ids[same[0]]} also on line "
                     f"{a}", "each item must appear once; remove one of the lines")
  item_rank = np.empty(len(order), np.int64)
  item_rank[order] = np.arange(len(order))  # file row -> dense index
  item = item_rank[item_row]
  u_order = id_order(user_vocab)
  user_rank = np.empty(len(u_order), np.int64)
  user_rank[u_order] = np.arange(len(u_order))
  user = user_rank[user_code]

  # Duplicates: sort by (user, item) key, then timestamp, then row; keep each key's last.
  n_items = len(order)
  key = user * n_items + item
  rows = np.arange(len(key))
  by_key = np.lexsort((rows, timestamp, key))
  last = np.ones(len(key), bool)
  last[:-1] = key[by_key][1:] != key[by_key][:-1]
  keep = np.sort(by_key[last])
  report = report.add(DUPLICATE_RULE, len(key) - len(keep))
  used = np.zeros(n_items, bool)
  used[item[keep]] = True
  report = report.add(NO_INTERACTIONS, n_items - int(used.sum()))

  item_ids = sorted_ids.astype(str)
  interactions = Interactions(
      user=user[keep].astype(np.int32), item=item[keep].astype(np.int32),
      rating=np.asarray(rating)[keep].astype(np.float32),
      timestamp=np.asarray(timestamp)[keep].astype(np.int64),
      user_ids=np.asarray(user_vocab)[u_order].astype(str), item_ids=item_ids)
  meta = Items(item_ids=item_ids, titles=np.array([items.titles[i] for i in order], dtype=str),
               years=items.years[order].astype(np.float64),
               categories=items.categories[order].astype(bool),
               category_names=tuple(items.category_names))
  return Dataset(name=name, interactions=interactions, items=meta,
                 rating_scale=(float(rating_scale.low), float(rating_scale.high)),
                 report=report, source=source)


def join(*, name: str, source: str, ratings: RatingsTable, items: ItemTable,
         rating_scale: Optional[RatingScale]) -> Dataset:
  """Checks the scale, maps raw item ids onto item rows and assembles the Dataset."""
  if len(items.ids) == 0:
    raise data_error(items.path, None, None, "no items", "the file is empty; re-download it")
  scale = rating_scale or infer_scale(ratings.rating)
  check_scale(ratings.rating, scale, path=ratings.path, line_of=ratings.line_of)
  ids, wanted = items.ids, ratings.item
  if ids.dtype.kind != wanted.dtype.kind:  # a token column that is not all integers
    ids, wanted = ids.astype(str), wanted.astype(str)
  order = np.argsort(ids, kind="stable")
  pos = np.clip(np.searchsorted(ids[order], wanted), 0, len(ids) - 1)
  found = ids[order][pos] == wanted
  if not found.all():
    i = int(np.argmin(found))
    raise data_error(ratings.path, ratings.line_of(i), "item",
                     f"item id {wanted[i]} is not in {items.path.name}",
                     f"every rated item needs a row in {items.path}; the files may come "
                     "from different releases")
  user_vocab, user_code = np.unique(ratings.user, return_inverse=True)
  report = FilterReport()
  report = report.add(f"blank lines skipped in {ratings.path.name}", ratings.blank_lines)
  for what, count in items.report:
    report = report.add(what, count)
  return assemble_dataset(name=name, source=source, user_code=user_code.ravel(),
                          user_vocab=user_vocab, item_row=order[pos], items=items,
                          rating=ratings.rating, timestamp=ratings.timestamp,
                          rating_scale=scale, report=report)
