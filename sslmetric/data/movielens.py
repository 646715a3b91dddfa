"""MovieLens loaders: GroupLens 100K, 1M/10M (`::`), 20M/25M/latest (CSV), RecBole atomic.

This module knows the MovieLens file layouts (:data:`LAYOUTS`) and their item files; the
rating files, the id encoding, de-duplication, the rating scale and the assembly of the
:class:`~sslmetric.data.types.Dataset` are shared with the other sources and live in
:mod:`sslmetric.data.tables`, whose docstring states the conventions every loader follows
(sorted raw-id order, so the GroupLens and the RecBole copies of a catalogue give
identical datasets; every row of the item file is an item; the duplicate rule
:data:`~sslmetric.data.tables.DUPLICATE_RULE`; ratings on the declared scale; errors
naming file, line and field).

MovieLens specifics:

* **Years** come from the title's trailing "(YYYY)" (GroupLens, 1M, CSV) or the
  `release_year` column (RecBole), falling back to the other source; NaN when unknown.
* **Genres** keep the 19 GroupLens ML-100K genres in their `u.genre` order
  (:data:`MOVIELENS_GENRES`), then the genres of later releases, then any others sorted.
"""

from __future__ import annotations

import csv
import io
import pathlib
import re
from typing import Optional, Sequence

import numpy as np

from sslmetric.data.tables import (ANY, FLOAT, HALF_STARS, INT, TOKEN, WHOLE_STARS,
                                   ItemTable, RatingScale, RatingsTable, join, parse_int,
                                   read_ratings, read_text_lines)
from sslmetric.data.types import Dataset, data_error

MOVIELENS_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy",
                    "Crime", "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror",
                    "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
# Genres that later releases add (ML-20M and newer spell "Children's" as "Children").
_LATER_GENRES = ("Children", "IMAX", "(no genres listed)")


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


def genre_order(names) -> tuple:
  """Category names in MovieLens order (100K's, then later releases'), others sorted."""
  known = MOVIELENS_GENRES + _LATER_GENRES
  present = set(names)
  return tuple(g for g in known if g in present) + tuple(sorted(present - set(known)))


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
  kind = {"user_id": TOKEN, "item_id": TOKEN, "rating": FLOAT, "timestamp": INT}
  return read_ratings(path, sep="\t", fields=[(n, kind.get(n, ANY)) for n in names],
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
