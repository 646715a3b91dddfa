"""MovieLens loaders: GroupLens 100K, 1M/10M (`::`), 20M/25M/latest (CSV), RecBole atomic.

Every loader returns a :class:`~sslmetric.data.types.Dataset` built the same way:

* **Id order.** Users and items get dense indices in *sorted raw-id order*: numerically
  when every raw id is an integer (MovieLens), else as strings. So the GroupLens and the
  RecBole copies of a catalogue give identical datasets, whatever the row order of the files.
* **Items** are every row of the item file, with or without interactions (those without are
  counted in the report). A rating whose item is not in the item file is a
  :class:`~sslmetric.data.types.DataError` naming file, line and field.
* **Users** are those that appear in the rating file.
* **Duplicates.** For rows with the same (user, item) the one with the latest timestamp is
  kept; among equal timestamps, the later line of the file. The rest are counted
  (:data:`DUPLICATE_RULE`). Kept rows stay in file order.
* **Ratings** must lie on the declared scale (min, max, step), e.g. 1..5 in whole stars or
  0.5..5 in half stars; anything else is an error naming the line.
* **Years** come from the title's trailing "(YYYY)" (GroupLens, 1M, CSV) or the
  `release_year` column (RecBole), falling back to the other source; NaN when unknown.

Rating files are parsed with pandas' C reader; if that fails or finds anything odd, a
line-by-line reader runs instead and either reads the file (e.g. counting blank lines) or
raises a :class:`DataError` naming the first bad line (1-based, as an editor shows it).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import pathlib
import re
from array import array
from typing import NamedTuple, Optional, Sequence

import numpy as np
import pandas as pd

from sslmetric.data.types import Dataset, FilterReport, Interactions, Items, data_error

# The 19 genres of GroupLens ML-100K (`u.genre`), in its column order.
MOVIELENS_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy",
                    "Crime", "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror",
                    "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
# Genres that later releases add (ML-20M and newer spell "Children's" as "Children").
_LATER_GENRES = ("Children", "IMAX", "(no genres listed)")

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

_TITLE_YEAR = re.compile(
    r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:\s*[-\u2013]\s*(?:\d{4})?)?\)"
    r"(?P<rest>(?:\s*\((?!\d{4}\))[^()]*\))*)\s*$")
_MONTHS = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}


def split_title_year(raw: str) -> tuple:
  """"Toy Story (1995)" -> ("Toy Story", 1995, False).

  The year is the last "(YYYY)" (or "(YYYY-YYYY)") group; parenthesised annotations after
  it, such as GroupLens' "(V)" for video releases, are removed too and flagged by the third
  value. Titles without a year come back stripped, with year None.
  """
  m = _TITLE_YEAR.match(raw)
  if m is None:
    return raw.strip(), None, False
  return m.group("title").strip(), int(m.group("year")), bool(m.group("rest").strip())


def _year_of_date(text: str) -> Optional[int]:
  """Year of a GroupLens release date "01-Jan-1995"; None when empty; ValueError if bad."""
  text = text.strip()
  if not text:
    return None
  parts = text.split("-")
  if (len(parts) != 3 or parts[1].lower() not in _MONTHS or not parts[0].isdigit()
      or not 1 <= int(parts[0]) <= 31 or not (parts[2].isdigit() and len(parts[2]) == 4)):
    raise ValueError(text)
  return int(parts[2])


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


def genre_order(names) -> tuple:
  """Category names in MovieLens order (100K's, then later releases'), others sorted."""
  known = MOVIELENS_GENRES + _LATER_GENRES
  present = set(names)
  return tuple(g for g in known if g in present) + tuple(sorted(present - set(known)))


# --------------------------------------------------------------------------- rating files

_INT, _FLOAT, _TOKEN, _ANY, _EMPTY = "int", "float", "token", "any", "empty"
_PANDAS_DTYPE = {_INT: "int64", _FLOAT: "float64", _TOKEN: "int64", _ANY: "object",
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
    elif kind == _FLOAT and np.isnan(values).any():  # a missing field: let the slow
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
          if kind == _INT:
            try:
              value = parse_int(value)
            except ValueError:
              raise data_error(path, lineno, name, f"{value!r} is not an integer",
                               "MovieLens ids and timestamps are integers (unix seconds); "
                               "fix or remove the line") from None
          elif kind == _FLOAT:
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
    if kind == _INT:
      columns.append(np.array(col, dtype=np.int64))
    elif kind == _FLOAT:
      columns.append(np.array(col, dtype=np.float64))
    elif kind == _ANY:
      columns.append(np.array(col, dtype=object))
    else:  # token: integers when every value is one, else strings
      try:
        columns.append(np.array([parse_int(v) for v in col], dtype=np.int64))
      except ValueError:
        columns.append(np.array(col, dtype=str))
  return columns, np.frombuffer(lines, dtype=np.int64).copy(), blank


def read_ratings(path, *, sep: str, fields: Sequence[tuple] = (
    ("user", _INT), ("item", _INT), ("rating", _FLOAT), ("timestamp", _INT)),
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


# --------------------------------------------------------------------------- item files

def _multi_hot(genre_lists: list, names: tuple) -> np.ndarray:
  column = {g: j for j, g in enumerate(names)}
  out = np.zeros((len(genre_lists), len(names)), bool)
  for i, genres in enumerate(genre_lists):
    out[i, [column[g] for g in genres]] = True
  return out


def _titled_items(path, rows: list, blank: int) -> ItemTable:
  """ItemTable from (line, id, "Title (Year)", genre list) rows (1M, 10M, CSV layouts)."""
  titles, years, genres, report = [], [], [], {"no year in the title (year NaN)": 0,
                                                "annotations after the year removed "
                                                "from the title": 0}
  for _, _, raw, gs in rows:
    title, year, annotated = split_title_year(raw)
    titles.append(title)
    years.append(np.nan if year is None else float(year))
    genres.append(gs)
    report["no year in the title (year NaN)"] += year is None
    report["annotations after the year removed from the title"] += annotated
  names = genre_order({g for gs in genres for g in gs})
  return ItemTable(ids=np.array([r[1] for r in rows], np.int64), titles=titles,
                   years=np.array(years, np.float64), categories=_multi_hot(genres, names),
                   category_names=names, lines=np.array([r[0] for r in rows], np.int64),
                   path=path, report=((f"blank lines skipped in {path.name}", blank),)
                   + tuple((f"items with {k}", v) for k, v in report.items()))


def _item_id(path, lineno, text) -> int:
  try:
    return parse_int(text)
  except ValueError:
    raise data_error(path, lineno, "item id", f"{text!r} is not an integer",
                     "MovieLens item ids are integers; fix or remove the line") from None


def read_u_genre(path: pathlib.Path) -> tuple:
  """GroupLens `u.genre`: "name|index" lines with indices 0, 1, 2, ... in order."""
  names = []
  lines, _ = read_text_lines(path)
  for lineno, text in enumerate(lines, 1):
    if not text.strip():
      continue
    parts = text.split("|")
    if len(parts) != 2 or parts[1].strip() != str(len(names)):
      raise data_error(path, lineno, None, f"expected 'name|{len(names)}', found {text!r}",
                       "u.genre lists the genre columns of u.item in order")
    names.append(parts[0])
  return tuple(names)


def read_u_item(path: pathlib.Path, genres: tuple) -> ItemTable:
  """GroupLens `u.item`: id|title (year)|release date|video date|URL|one flag per genre."""
  lines, _ = read_text_lines(path)
  n_fields = 5 + len(genres)
  ids, titles, years, flags, where, blank = [], [], [], [], [], 0
  counts = {"item years taken from the release date (none in the title)": 0,
            "items with unknown release year (NaN)": 0,
            "annotations after the year removed from the title, e.g. '(V)'": 0}
  for lineno, text in enumerate(lines, 1):
    if not text.strip():
      blank += 1
      continue
    parts = text.split("|")
    if len(parts) != n_fields:
      raise data_error(path, lineno, None, f"{len(parts)} '|'-separated fields",
                       f"expected {n_fields}: id|title|release date|video release date|"
                       f"IMDb URL|{len(genres)} genre flags; fix or remove the line")
    ids.append(_item_id(path, lineno, parts[0]))
    title, year, annotated = split_title_year(parts[1])
    counts["annotations after the year removed from the title, e.g. '(V)'"] += annotated
    if year is None:
      try:
        year = _year_of_date(parts[2])
      except ValueError:
        raise data_error(path, lineno, "release date", f"{parts[2]!r} is not a date like "
                         "'01-Jan-1995'", "fix the date or leave it empty") from None
      counts["item years taken from the release date (none in the title)"] += (
          year is not None)
    counts["items with unknown release year (NaN)"] += year is None
    row = parts[5:]
    for g, v in zip(genres, row):
      if v not in ("0", "1"):
        raise data_error(path, lineno, f"genre flag {g}", f"{v!r} is not 0 or 1",
                         "fix the line")
    titles.append(title)
    years.append(np.nan if year is None else float(year))
    flags.append([v == "1" for v in row])
    where.append(lineno)
  return ItemTable(ids=np.array(ids, np.int64), titles=titles,
                   years=np.array(years, np.float64),
                   categories=np.array(flags, bool).reshape(len(ids), len(genres)),
                   category_names=tuple(genres), lines=np.array(where, np.int64), path=path,
                   report=((f"blank lines skipped in {path.name}", blank),)
                   + tuple(counts.items()))


def read_movies_dat(path: pathlib.Path) -> ItemTable:
  """ML-1M/10M `movies.dat`: "id::Title (Year)::Genre|Genre" (latin-1 or UTF-8)."""
  lines, _ = read_text_lines(path)
  rows, blank = [], 0
  for lineno, text in enumerate(lines, 1):
    if not text.strip():
      blank += 1
      continue
    parts = text.split("::")
    if len(parts) != 3:
      raise data_error(path, lineno, None, f"{len(parts)} '::'-separated fields",
                       "expected 3: MovieID::Title::Genres; fix or remove the line")
    genres = [g for g in parts[2].split("|") if g]
    rows.append((lineno, _item_id(path, lineno, parts[0]), parts[1], genres))
  return _titled_items(path, rows, blank)


def read_movies_csv(path: pathlib.Path) -> ItemTable:
  """ML-20M/25M/latest `movies.csv`: header movieId,title,genres; quoted titles."""
  lines, _ = read_text_lines(path)
  reader = csv.reader(io.StringIO("\n".join(lines) + "\n", newline=""))
  header = next(reader, None)
  if header != ["movieId", "title", "genres"]:
    raise data_error(path, 1, None, f"header {header}", "expected 'movieId,title,genres'")
  rows, blank = [], 0
  try:
    for parts in reader:
      lineno = reader.line_num
      if not parts or not "".join(parts).strip():
        blank += 1
        continue
      if len(parts) != 3:
        raise data_error(path, lineno, None, f"{len(parts)} fields",
                         "expected 3: movieId,title,genres (quote titles with commas)")
      genres = [g for g in parts[2].split("|") if g]
      rows.append((lineno, _item_id(path, lineno, parts[0]), parts[1], genres))
  except csv.Error as e:
    raise data_error(path, reader.line_num, "title", f"bad CSV ({e})",
                     "check the quotes") from None
  return _titled_items(path, rows, blank)


# --------------------------------------------------------------------------- RecBole

def _recbole_header(text: str) -> list:
  """Field names of a RecBole header "user_id:token\titem_id:token\t..."."""
  return [f.split(":")[0] for f in text.split("\t")]


def read_recbole_items(path: pathlib.Path) -> ItemTable:
  """RecBole `.item`: header `name:type`; item_id, movie_title, release_year, class/genre.

  Quirks of the RecBole ML-100K copy: release_year "V" (GroupLens' "(V)" video tag) -> the
  year comes from the title's "(1995)", which is then removed; the unknown item's
  "unkonwn" title is read as "unknown" (both counted).
  """
  lines, _ = read_text_lines(path)
  if not lines:
    raise data_error(path, 1, None, "empty file", "re-download it")
  names = _recbole_header(lines[0])
  if "item_id" not in names:
    raise data_error(path, 1, "item_id", f"no item_id column in header {lines[0]!r}",
                     "RecBole item files start with 'item_id:token'")
  col = {n: j for j, n in enumerate(names)}
  genre_col = col.get("class", col.get("genre"))
  ids, titles, years, genres, where, blank = [], [], [], [], [], 0
  counts = {"item years taken from the title (release_year not a year)": 0,
            "items with unknown release year (NaN)": 0,
            "titles 'unkonwn' (RecBole typo) read as 'unknown'": 0}
  for lineno, text in enumerate(lines[1:], 2):
    if not text.strip():
      blank += 1
      continue
    parts = text.split("\t")
    if len(parts) != len(names):
      raise data_error(path, lineno, None, f"{len(parts)} tab-separated fields",
                       f"the header names {len(names)}: {', '.join(names)}")
    title = parts[col["movie_title"]].strip() if "movie_title" in col else ""
    if title == "unkonwn":
      title = "unknown"
      counts["titles 'unkonwn' (RecBole typo) read as 'unknown'"] += 1
    year_text = parts[col["release_year"]].strip() if "release_year" in col else ""
    year = int(year_text) if re.fullmatch(r"\d{4}", year_text) else None
    if year is None:
      stripped, year, _ = split_title_year(title)
      if year is not None:
        title = stripped
        counts["item years taken from the title (release_year not a year)"] += 1
    counts["items with unknown release year (NaN)"] += year is None
    ids.append(parts[col["item_id"]])
    titles.append(title)
    years.append(np.nan if year is None else float(year))
    genres.append(parts[genre_col].split() if genre_col is not None else [])
    where.append(lineno)
  try:
    id_array = np.array([parse_int(i) for i in ids], np.int64)
  except ValueError:
    id_array = np.array(ids, dtype=str)
  names_g = genre_order({g for gs in genres for g in gs})
  return ItemTable(ids=id_array, titles=titles, years=np.array(years, np.float64),
                   categories=_multi_hot(genres, names_g), category_names=names_g,
                   lines=np.array(where, np.int64), path=path,
                   report=((f"blank lines skipped in {path.name}", blank),)
                   + tuple(counts.items()))


def read_recbole_inter(path: pathlib.Path) -> RatingsTable:
  """RecBole `.inter`: header `name:type` naming user_id, item_id, rating, timestamp (any
  order; other columns are ignored)."""
  with open(path, encoding="utf-8", newline="") as f:
    header = f.readline().rstrip("\r\n")
  names = _recbole_header(header)
  needed = ("user_id", "item_id", "rating", "timestamp")
  missing = [n for n in needed if n not in names]
  if missing:
    raise data_error(path, 1, missing[0], f"header {header!r} lacks {', '.join(missing)}",
                     "a RecBole .inter file needs user_id, item_id, rating and timestamp")
  kind = {"user_id": _TOKEN, "item_id": _TOKEN, "rating": _FLOAT, "timestamp": _INT}
  return read_ratings(path, sep="\t", fields=[(n, kind.get(n, _ANY)) for n in names],
                      roles=needed, skip=1, encoding="utf-8")


# --------------------------------------------------------------------------- layouts

LAYOUTS = {
    "grouplens-100k": ("u.data", "u.item"),
    "recbole": ("<name>.inter", "<name>.item"),
    "dat": ("ratings.dat", "movies.dat"),
    "csv": ("ratings.csv", "movies.csv"),
}


def _recbole_stem(directory: pathlib.Path, stem: Optional[str]) -> Optional[str]:
  if stem:
    return stem
  if (directory / f"{directory.name}.inter").exists():
    return directory.name
  found = sorted(p.stem for p in directory.glob("*.inter")
                 if (directory / f"{p.stem}.item").exists())
  return found[0] if len(found) == 1 else None


def detect_layout(directory) -> str:
  """Which MovieLens layout `directory` holds (see :data:`LAYOUTS`); DataError if none."""
  d = pathlib.Path(directory)
  for layout, files in LAYOUTS.items():
    if layout == "recbole":
      if _recbole_stem(d, None):
        return layout
    elif all((d / f).is_file() for f in files):
      return layout
  listing = "; ".join(f"{k}: {' + '.join(v)}" for k, v in LAYOUTS.items())
  raise data_error(d, None, None, "no MovieLens files found",
                   f"put one of these pairs in the directory: {listing}")


def _require(d: pathlib.Path, files: Sequence[str], what: str) -> None:
  missing = [f for f in files if not (d / f).is_file()]
  if missing:
    raise data_error(d, None, None, f"missing {', '.join(missing)}",
                     f"{what} expects {', '.join(files)} in {d}")


def load_movielens(directory, *, layout: Optional[str] = None, name: Optional[str] = None,
                   rating_scale: Optional[RatingScale] = None,
                   recbole_name: Optional[str] = None) -> Dataset:
  """Loads a MovieLens directory in any layout of :data:`LAYOUTS`.

  Args:
    directory: the folder with the files.
    layout: one of LAYOUTS, or None to detect it.
    name: the Dataset's name (default: the folder name).
    rating_scale: (min, max, step); None: whole stars 1..5 for 100K, half stars 0.5..5 for
      CSV, and for `.dat`/RecBole whole stars unless some rating is fractional.
    recbole_name: stem of `<stem>.inter`/`<stem>.item` (default: the folder name, or the
      only pair present).
  """
  d = pathlib.Path(directory)
  layout = layout or detect_layout(d)
  name = name or d.name
  if layout == "grouplens-100k":
    _require(d, LAYOUTS[layout], "the GroupLens ML-100K layout")
    genres = read_u_genre(d / "u.genre") if (d / "u.genre").is_file() else MOVIELENS_GENRES
    ratings = read_ratings(d / "u.data", sep="\t")
    items = read_u_item(d / "u.item", genres)
    scale = rating_scale or WHOLE_STARS
  elif layout == "dat":
    _require(d, LAYOUTS[layout], "the ML-1M/10M layout")
    ratings = read_ratings(d / "ratings.dat", sep="::")
    items = read_movies_dat(d / "movies.dat")
    scale = rating_scale
  elif layout == "csv":
    _require(d, LAYOUTS[layout], "the ML-20M/25M/latest layout")
    with open(d / "ratings.csv", encoding="latin-1") as f:
      header = f.readline().strip()
    if header != "userId,movieId,rating,timestamp":
      raise data_error(d / "ratings.csv", 1, None, f"header {header!r}",
                       "expected 'userId,movieId,rating,timestamp'")
    ratings = read_ratings(d / "ratings.csv", sep=",", skip=1)
    items = read_movies_csv(d / "movies.csv")
    scale = rating_scale or HALF_STARS
  elif layout == "recbole":
    stem = _recbole_stem(d, recbole_name)
    if stem is None:
      raise data_error(d, None, None, "no single <name>.inter + <name>.item pair",
                       "pass recbole_name= or keep one pair in the folder")
    _require(d, (f"{stem}.inter", f"{stem}.item"), "the RecBole atomic layout")
    ratings = read_recbole_inter(d / f"{stem}.inter")
    items = read_recbole_items(d / f"{stem}.item")
    scale = rating_scale
  else:
    raise ValueError(f"unknown layout {layout!r}; expected one of {sorted(LAYOUTS)}")
  return join(name=name, source=str(d), ratings=ratings, items=items,
              rating_scale=RatingScale(*scale) if scale else None)


def read_layout_ratings(directory, layout: str) -> RatingsTable:
  """Only the ratings table of a GroupLens-100K or RecBole directory (for checksums)."""
  d = pathlib.Path(directory)
  if layout == "grouplens-100k":
    return read_ratings(d / "u.data", sep="\t")
  if layout == "recbole":
    return read_recbole_inter(d / f"{_recbole_stem(d, None)}.inter")
  raise ValueError(f"layout {layout!r} has no canonical digest")
