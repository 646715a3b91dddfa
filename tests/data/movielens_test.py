"""Tests for sslmetric.data.movielens on generated fixture files and the real ML-100K.

Every fixture is written here in the exact layout of its release (including the quirks:
latin-1 titles, "(V)" tags, empty release dates, quoted CSV titles, RecBole's "unkonwn"
and "V" year). Expected values are computed in the tests from the rows they wrote. The
real ML-100K in the GroupLens layout comes from the `write_ml100k_grouplens` fixture
(tests/conftest.py).
"""

import pathlib

import numpy as np
import pytest

from sslmetric.data import movielens, tables
from sslmetric.data.types import DataError

# ----------------------------------------------------------------------------- fixtures

GENRES3 = ("unknown", "Action", "Children's")


def write_grouplens(d: pathlib.Path, ratings, items, *, genres=GENRES3, genre_file=True):
  """u.data (tab), u.item ('|', latin-1) and u.genre, as GroupLens ships them."""
  d.mkdir(parents=True, exist_ok=True)
  (d / "u.data").write_text("".join("\t".join(map(str, r)) + "\n" for r in ratings))
  lines = []
  for item_id, title, date, flags in items:
    lines.append("|".join([str(item_id), title, date, "", "http://us.imdb.com/x"]
                          + [str(f) for f in flags]))
  (d / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
  if genre_file:
    (d / "u.genre").write_text("".join(f"{g}|{j}\n" for j, g in enumerate(genres)) + "\n")
  return d


BASIC_RATINGS = [  # user, item, rating, timestamp
    (10, 3, 4, 880000000),
    (2, 1, 5, 880000100),
    (33, 3, 1, 880000200),
    (2, 3, 2, 879999999),
    (10, 20, 3, 881000000),
]
BASIC_ITEMS = [  # id, title, release date, flags (unknown, Action, Children's)
    (1, "Misérables, Les (1995)", "01-Jan-1995", (0, 0, 1)),
    (20, "Land Before Time III: The Time of the Great Giving (1995) (V)", "", (0, 1, 1)),
    (3, "unknown", "", (1, 0, 0)),
    (7, "No Year In Title", "12-Mar-1987", (0, 1, 0)),  # never rated
]


@pytest.fixture
def basic(tmp_path):
  return write_grouplens(tmp_path / "ml-100k", BASIC_RATINGS, BASIC_ITEMS)


# ----------------------------------------------------------------------------- GroupLens

def test_grouplens_100k_matches_rows_written(basic):
  ds = movielens.load_movielens(basic)
  inter, items = ds.interactions, ds.items
  # Sorted raw-id order, numerically: users 2 < 10 < 33, items 1 < 3 < 7 < 20.
  np.testing.assert_array_equal(inter.user_ids, ["2", "10", "33"])
  np.testing.assert_array_equal(inter.item_ids, ["1", "3", "7", "20"])
  np.testing.assert_array_equal(items.item_ids, inter.item_ids)
  u_index = {u: j for j, u in enumerate([2, 10, 33])}
  i_index = {i: j for j, i in enumerate([1, 3, 7, 20])}
  np.testing.assert_array_equal(inter.user, [u_index[r[0]] for r in BASIC_RATINGS])
  np.testing.assert_array_equal(inter.item, [i_index[r[1]] for r in BASIC_RATINGS])
  np.testing.assert_array_equal(inter.rating, [r[2] for r in BASIC_RATINGS])
  np.testing.assert_array_equal(inter.timestamp, [r[3] for r in BASIC_RATINGS])
  assert inter.user.dtype == np.int32 and inter.item.dtype == np.int32
  assert inter.rating.dtype == np.float32 and inter.timestamp.dtype == np.int64
  np.testing.assert_array_equal(items.titles, [
      "Misérables, Les", "unknown", "No Year In Title",
      "Land Before Time III: The Time of the Great Giving"])
  np.testing.assert_array_equal(items.years, [1995, np.nan, 1987, 1995])
  assert items.years.dtype == np.float64
  assert items.category_names == GENRES3
  by_id = {it[0]: it[3] for it in BASIC_ITEMS}
  np.testing.assert_array_equal(items.categories,
                                np.array([by_id[i] for i in (1, 3, 7, 20)], bool))
  assert ds.rating_scale == (1.0, 5.0)
  assert ds.source == str(basic) and ds.name == "ml-100k"
  assert ds.report.as_dict() == {
      "blank lines skipped in u.data": 0,
      "blank lines skipped in u.item": 0,
      "item years taken from the release date (none in the title)": 1,
      "items with unknown release year (NaN)": 1,
      "annotations after the year removed from the title, e.g. '(V)'": 1,
      tables.DUPLICATE_RULE: 0,
      tables.NO_INTERACTIONS: 1,
  }


def test_u_genre_is_optional(tmp_path):
  flags = (0,) * 19
  d = write_grouplens(tmp_path, [(1, 1, 3, 5)], [(1, "A (1990)", "", flags)],
                      genre_file=False)
  assert movielens.load_movielens(d).items.category_names == movielens.MOVIELENS_GENRES


def test_duplicates_keep_latest_then_later_line(tmp_path):
  ratings = [(1, 1, 1, 100), (1, 1, 2, 300), (2, 1, 4, 50), (1, 1, 3, 300),
             (1, 1, 5, 200)]
  d = write_grouplens(tmp_path, ratings, [(1, "A (1990)", "", (0, 1, 0))])
  ds = movielens.load_movielens(d)
  # (1, 1) has four rows; latest timestamp 300 twice -> the later line (rating 3) wins.
  np.testing.assert_array_equal(ds.interactions.rating, [4, 3])  # file order kept
  np.testing.assert_array_equal(ds.interactions.timestamp, [50, 300])
  assert ds.report.as_dict()[tables.DUPLICATE_RULE] == 3


def test_blank_lines_are_counted_and_line_numbers_stay_right(tmp_path):
  d = write_grouplens(tmp_path / "a", BASIC_RATINGS, BASIC_ITEMS)
  text = (d / "u.data").read_text().splitlines(keepends=True)
  (d / "u.data").write_text("".join(text[:2] + ["\n"] + text[2:] + ["\n"]))
  ds = movielens.load_movielens(d)  # goes through the line-by-line reader
  ref = movielens.load_movielens(write_grouplens(tmp_path / "b", BASIC_RATINGS,
                                                 BASIC_ITEMS))
  for f in ("user", "item", "rating", "timestamp", "user_ids", "item_ids"):
    np.testing.assert_array_equal(getattr(ds.interactions, f),
                                  getattr(ref.interactions, f))
  assert ds.report.as_dict()["blank lines skipped in u.data"] == 2
  # A bad row after the blank line is reported at its editor line (5: 2 rows, blank, 2).
  lines = (d / "u.data").read_text().split("\n")
  lines[4] = "2\t3\t9\t1"
  (d / "u.data").write_text("\n".join(lines))
  with pytest.raises(DataError, match=r"u\.data:5: field 'rating': 9"):
    movielens.load_movielens(d)


@pytest.mark.parametrize("row, where", [
    ("2\t3\t4", r"u\.data:3: 3 fields"),
    ("2\t3\t4\t5\t6", r"u\.data:3: 5 fields"),
    ("x2\t3\t4\t5", r"u\.data:3: field 'user': 'x2' is not an integer"),
    ("2\t3.5\t4\t5", r"u\.data:3: field 'item': '3.5' is not an integer"),
    ("2\t3\t6\t5", r"u\.data:3: field 'rating': 6 is not on the declared scale 1\.\.5"),
    ("2\t3\t0\t5", r"u\.data:3: field 'rating': 0 is not on"),
    ("2\t3\t2.5\t5", r"u\.data:3: field 'rating': 2\.5 is not on .* steps of 1"),
    ("2\t3\tfour\t5", r"u\.data:3: field 'rating': 'four' is not a number"),
    ("2\t3\t4\t1998-01-01", r"u\.data:3: field 'timestamp': '1998-01-01' is not an int"),
    ("2\t99\t4\t5", r"u\.data:3: field 'item': item id 99 is not in u\.item"),
])
def test_u_data_errors_name_file_line_field(tmp_path, row, where):
  rows = ["\t".join(map(str, r)) for r in BASIC_RATINGS]
  rows[2] = row
  d = write_grouplens(tmp_path, [], BASIC_ITEMS)
  (d / "u.data").write_text("\n".join(rows) + "\n")
  with pytest.raises(DataError, match=where) as e:
    movielens.load_movielens(d)
  assert str(d / "u.data") in str(e.value)


@pytest.mark.parametrize("line, where", [
    ("5|Five (1990)|||url|0|1", r"u\.item:2: 7 '\|'-separated fields. expected 8"),
    ("five|Five (1990)|||url|0|1|0", r"u\.item:2: field 'item id': 'five'"),
    ("5|Five|1990-01-01||url|0|1|0", r"u\.item:2: field 'release date': '1990-01-01'"),
    ("5|Five (1990)|||url|0|2|0", r"u\.item:2: field 'genre flag Action': '2'"),
    ("1|Again (1990)|||url|0|1|0", r"u\.item:2: field 'item id': 1 also on line 1"),
])
def test_u_item_errors(tmp_path, line, where):
  d = write_grouplens(tmp_path, [(1, 1, 3, 5)], [(1, "A (1990)", "", (0, 1, 0))])
  (d / "u.item").write_text((d / "u.item").read_text("latin-1") + line + "\n")
  with pytest.raises(DataError, match=where):
    movielens.load_movielens(d)


def test_missing_files_say_what_is_expected(tmp_path):
  with pytest.raises(DataError, match=r"no MovieLens files found.*u\.data \+ u\.item.*"
                     r"<name>\.inter.*ratings\.dat \+ movies\.dat.*ratings\.csv"):
    movielens.load_movielens(tmp_path)
  (tmp_path / "u.data").write_text("1\t1\t1\t1\n")
  with pytest.raises(DataError, match=r"missing u\.item.*expects u\.data, u\.item"):
    movielens.load_movielens(tmp_path, layout="grouplens-100k")


@pytest.mark.parametrize("layout, present, missing", [
    ("grouplens-100k", "u.item", "u.data"),
    ("dat", "ratings.dat", "movies.dat"),
    ("csv", "movies.csv", "ratings.csv"),
])
def test_missing_file_per_layout(tmp_path, layout, present, missing):
  (tmp_path / present).write_text("x\n")
  with pytest.raises(DataError, match=rf"{tmp_path}: missing {missing}. .*expects"):
    movielens.load_movielens(tmp_path, layout=layout)


def test_missing_recbole_pair(tmp_path):
  (tmp_path / "a.inter").write_text("user_id:token\n")
  with pytest.raises(DataError, match=r"no single <name>\.inter \+ <name>\.item pair"):
    movielens.load_movielens(tmp_path, layout="recbole")


# ----------------------------------------------------------------------------- 1M / 10M

def write_dat(d, ratings, movies, encoding="latin-1"):
  d.mkdir(parents=True, exist_ok=True)
  (d / "ratings.dat").write_text("".join("::".join(map(str, r)) + "\n" for r in ratings))
  (d / "movies.dat").write_bytes("".join(f"{i}::{t}::{g}\n" for i, t, g in movies)
                                 .encode(encoding))
  return d


ML1M_MOVIES = [(1, "Toy Story (1995)", "Animation|Children's|Comedy"),
               (2, "Cité des enfants perdus, La (1995)", "Adventure|Sci-Fi"),
               (3, "Star Wars: Episode IV - A New Hope (1977)", "Action|Sci-Fi")]


def test_ml1m_dat(tmp_path):
  ratings = [(6040, 1, 5, 978300760), (1, 2, 3, 978302109), (1, 1, 4, 978301968)]
  ds = movielens.load_movielens(write_dat(tmp_path / "ml-1m", ratings, ML1M_MOVIES),
                                rating_scale=tables.WHOLE_STARS)
  np.testing.assert_array_equal(ds.interactions.user_ids, ["1", "6040"])
  np.testing.assert_array_equal(ds.interactions.user, [1, 0, 0])
  np.testing.assert_array_equal(ds.interactions.item, [0, 1, 0])
  np.testing.assert_array_equal(ds.items.titles, [
      "Toy Story", "Cité des enfants perdus, La", "Star Wars: Episode IV - A New Hope"])
  np.testing.assert_array_equal(ds.items.years, [1995, 1995, 1977])
  # MovieLens genre order (100K's), only the genres present.
  assert ds.items.category_names == ("Action", "Adventure", "Animation", "Children's",
                                     "Comedy", "Sci-Fi")
  names = ds.items.category_names
  for (_, _, g), row in zip(ML1M_MOVIES, ds.items.categories):
    assert {names[j] for j in np.flatnonzero(row)} == set(g.split("|"))
  assert ds.report.as_dict()[tables.NO_INTERACTIONS] == 1
  assert ds.rating_scale == (1.0, 5.0)


def test_ml10m_dat_half_stars_and_utf8(tmp_path):
  ratings = [(1, 1, 4.5, 838985046), (2, 3, 0.5, 838983525)]
  d = write_dat(tmp_path / "ml-10M100K", ratings, ML1M_MOVIES, encoding="utf-8")
  ds = movielens.load_movielens(d)  # scale inferred: a fractional rating -> half stars
  assert ds.rating_scale == (0.5, 5.0)
  np.testing.assert_array_equal(ds.interactions.rating, [4.5, 0.5])
  assert ds.items.titles[1] == "Cité des enfants perdus, La"
  with pytest.raises(DataError, match=r"ratings\.dat:1: field 'rating': 4\.5 .* steps of 1"):
    movielens.load_movielens(d, rating_scale=tables.WHOLE_STARS)


@pytest.mark.parametrize("row, where", [
    ("1::2::3", r"ratings\.dat:2: 3 fields"),
    ("1:2::3::4", r"ratings\.dat:2: 3 fields"),
    ("1::2::3::4::5", r"ratings\.dat:2: 5 fields"),
    ("1::b::3::4", r"ratings\.dat:2: field 'item': 'b' is not an integer"),
    ("1::2::7::4", r"ratings\.dat:2: field 'rating': 7 is not on"),
    ("1::2::3::yesterday", r"ratings\.dat:2: field 'timestamp': 'yesterday'"),
])
def test_ratings_dat_errors(tmp_path, row, where):
  d = write_dat(tmp_path, [(1, 1, 5, 1)], ML1M_MOVIES)
  (d / "ratings.dat").write_text((d / "ratings.dat").read_text() + row + "\n")
  with pytest.raises(DataError, match=where):
    movielens.load_movielens(d, rating_scale=tables.WHOLE_STARS)


def test_movies_dat_errors(tmp_path):
  d = write_dat(tmp_path, [(1, 1, 5, 1)], ML1M_MOVIES + [(4, "Four (1990)::x", "Drama")])
  with pytest.raises(DataError, match=r"movies\.dat:4: 4 '::'-separated fields"):
    movielens.load_movielens(d)


# ----------------------------------------------------------------------------- CSV

MOVIES_CSV = (
    "movieId,title,genres\n"
    "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
    '11,"American President, The (1995)",Comedy|Drama|Romance\n'
    "5,Babylon 5,Sci-Fi\n"
    '7,"Brothers (2006-2007) ",(no genres listed)\n'
    "9,Casino (1995),IMAX\n"
)


def write_csv(d, ratings, movies=MOVIES_CSV):
  d.mkdir(parents=True, exist_ok=True)
  (d / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "".join(
      ",".join(map(str, r)) + "\n" for r in ratings))
  (d / "movies.csv").write_text(movies)
  return d


def test_csv_layout(tmp_path):
  ratings = [(3, 11, 3.5, 1147880044), (1, 1, 0.5, 1147868817), (1, 5, 5.0, 1147868828)]
  ds = movielens.load_movielens(write_csv(tmp_path / "ml-25m", ratings))
  assert ds.rating_scale == (0.5, 5.0)
  np.testing.assert_array_equal(ds.interactions.item_ids, ["1", "5", "7", "9", "11"])
  np.testing.assert_array_equal(ds.interactions.item, [4, 0, 1])
  np.testing.assert_array_equal(ds.interactions.rating, [3.5, 0.5, 5.0])
  np.testing.assert_array_equal(ds.items.titles, [
      "Toy Story", "Babylon 5", "Brothers", "Casino", "American President, The"])
  np.testing.assert_array_equal(ds.items.years, [1995, np.nan, 2006, 1995, 1995])
  assert ds.items.category_names[-3:] == ("Children", "IMAX", "(no genres listed)")
  assert ds.items.categories[2, ds.items.category_names.index("(no genres listed)")]
  report = ds.report.as_dict()
  assert report["items with no year in the title (year NaN)"] == 1
  assert report[tables.NO_INTERACTIONS] == 2


@pytest.mark.parametrize("row, where", [
    ("1,1,5.5,10", r"ratings\.csv:3: field 'rating': 5\.5 is not on .*0\.5\.\.5"),
    ("1,1,3.25,10", r"ratings\.csv:3: field 'rating': 3\.25 is not on .*steps of 0\.5"),
    ("1,1,,10", r"ratings\.csv:3: field 'rating': '' is not a number"),
    ("1,1,3,10.5", r"ratings\.csv:3: field 'timestamp': '10\.5' is not an integer"),
    ("1,1,3", r"ratings\.csv:3: 3 fields"),
    ("one,1,3,10", r"ratings\.csv:3: field 'user': 'one' is not an integer"),
])
def test_ratings_csv_errors(tmp_path, row, where):
  d = write_csv(tmp_path, [(1, 5, 4, 1)])
  (d / "ratings.csv").write_text((d / "ratings.csv").read_text() + row + "\n")
  with pytest.raises(DataError, match=where):
    movielens.load_movielens(d)


def test_csv_headers_are_checked(tmp_path):
  d = write_csv(tmp_path, [(1, 5, 4, 1)])
  (d / "ratings.csv").write_text("user,item,rating,time\n1,5,4,1\n")
  with pytest.raises(DataError, match=r"ratings\.csv:1: header 'user,item"):
    movielens.load_movielens(d)
  d = write_csv(tmp_path, [(1, 5, 4, 1)], movies="id,title\n1,A (1990)\n")
  with pytest.raises(DataError, match=r"movies\.csv:1: header \['id', 'title'\]"):
    movielens.load_movielens(d)


# ----------------------------------------------------------------------------- RecBole

def write_recbole(d, stem, inter_rows, item_rows, *,
                  inter_header="user_id:token\titem_id:token\trating:float\ttimestamp:float"):
  d.mkdir(parents=True, exist_ok=True)
  (d / f"{stem}.inter").write_text(inter_header + "\n" + "".join(
      "\t".join(map(str, r)) + "\n" for r in inter_rows))
  (d / f"{stem}.item").write_text(
      "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
      + "".join("\t".join(r) + "\n" for r in item_rows), encoding="utf-8")
  return d


RECBOLE_ITEMS = [("1", "Toy Story", "1995", "Animation Children's Comedy"),
                 ("267", "unkonwn", "unkonwn", "unknown"),
                 ("1412", "Land Before Time III: The Time of the Great Giving (1995)", "V",
                  "Animation Children's"),
                 ("2", "Á köldum klaka (Cold Fever)", "1994", "Film-Noir Sci-Fi")]


def test_recbole_layout_and_quirks(tmp_path):
  inter = [(5, 1, 3, 881250949), (5, 1412, 4, 881250950), (1, 2, 2, "881250951.0")]
  d = write_recbole(tmp_path / "ml-100k", "ml-100k", inter, RECBOLE_ITEMS)
  ds = movielens.load_movielens(d)
  np.testing.assert_array_equal(ds.items.item_ids, ["1", "2", "267", "1412"])
  np.testing.assert_array_equal(ds.items.titles, [
      "Toy Story", "Á köldum klaka (Cold Fever)", "unknown",
      "Land Before Time III: The Time of the Great Giving"])
  np.testing.assert_array_equal(ds.items.years, [1995, 1994, np.nan, 1995])
  assert ds.items.category_names == ("unknown", "Animation", "Children's", "Comedy",
                                     "Film-Noir", "Sci-Fi")
  np.testing.assert_array_equal(ds.interactions.timestamp, [881250949, 881250950,
                                                            881250951])
  report = ds.report.as_dict()
  assert report["titles 'unkonwn' (RecBole typo) read as 'unknown'"] == 1
  assert report["item years taken from the title (release_year not a year)"] == 1
  assert report["items with unknown release year (NaN)"] == 1


def test_recbole_column_order_from_header(tmp_path):
  header = "timestamp:float\trating:float\tuser_id:token\textra:token\titem_id:token"
  inter = [(10, 3, 7, "x", 1), (11, 5, 8, "y", 2)]
  ds = movielens.load_movielens(write_recbole(tmp_path / "x", "x", inter, RECBOLE_ITEMS,
                                              inter_header=header))
  np.testing.assert_array_equal(ds.interactions.user_ids, ["7", "8"])
  np.testing.assert_array_equal(ds.interactions.rating, [3, 5])
  np.testing.assert_array_equal(ds.interactions.timestamp, [10, 11])


@pytest.mark.parametrize("row, where", [
    ("1\t2\t3", r"x\.inter:3: 3 fields"),
    ("1\t2\t6\t4", r"x\.inter:3: field 'rating': 6 is not on"),
    ("1\t2\t3\tnoon", r"x\.inter:3: field 'timestamp': 'noon' is not an integer"),
    ("1\t3\t3\t4", r"x\.inter:3: field 'item': item id 3 is not in x\.item"),
])
def test_recbole_inter_errors(tmp_path, row, where):
  d = write_recbole(tmp_path / "x", "x", [(1, 1, 3, 4)], RECBOLE_ITEMS)
  (d / "x.inter").write_text((d / "x.inter").read_text() + row + "\n")
  with pytest.raises(DataError, match=where):
    movielens.load_movielens(d)


def test_recbole_item_errors(tmp_path):
  d = write_recbole(tmp_path / "x", "x", [(1, 1, 3, 4)], RECBOLE_ITEMS + [("9", "Nine")])
  with pytest.raises(DataError, match=r"x\.item:6: 2 tab-separated fields"):
    movielens.load_movielens(d)
  (d / "x.inter").write_text("user_id:token\titem_id:token\n1\t1\n")
  with pytest.raises(DataError, match=r"x\.inter:1: field 'rating': .*lacks rating, "
                     r"timestamp"):
    movielens.load_movielens(d)


# ----------------------------------------------------------------------------- helpers

@pytest.mark.parametrize("raw, expected", [
    ("Toy Story (1995)", ("Toy Story", 1995, False)),
    ("Land Before Time III (1995) (V)", ("Land Before Time III", 1995, True)),
    ("City of Lost Children, The (Cité des enfants perdus, La) (1995)",
     ("City of Lost Children, The (Cité des enfants perdus, La)", 1995, False)),
    ("Babylon 5", ("Babylon 5", None, False)),
    ("Brothers (2006–2007) ", ("Brothers", 2006, False)),
    ("Two Years (1990) (1995)", ("Two Years (1990)", 1995, False)),
    ("unknown", ("unknown", None, False)),
])
def test_split_title_year(raw, expected):
  assert movielens.split_title_year(raw) == expected


# ----------------------------------------------------------------------------- real data

def test_real_ml100k_both_layouts_agree(shared_data_dir, ml100k_dataset,
                                        write_ml100k_grouplens, tmp_path):
  real = shared_data_dir / "ml-100k"
  a = ml100k_dataset  # load_movielens(real)
  b = movielens.load_movielens(write_ml100k_grouplens(tmp_path / "ml-100k"))
  assert movielens.detect_layout(real) == "recbole"
  for f in ("user", "item", "rating", "timestamp", "user_ids", "item_ids"):
    np.testing.assert_array_equal(getattr(a.interactions, f), getattr(b.interactions, f))
  for f in ("item_ids", "titles", "years", "categories"):
    np.testing.assert_array_equal(getattr(a.items, f), getattr(b.items, f))
  assert a.items.category_names == b.items.category_names == movielens.MOVIELENS_GENRES
  inter = a.interactions
  assert (len(inter), inter.num_users, inter.num_items) == (100_000, 943, 1_682)
  # Independent check of the encoding: raw ids of the first rows of the file.
  first = [ln.split("\t") for ln in (real / "ml-100k.inter").read_text().splitlines()[1:4]]
  for row, (u, i, r, t) in enumerate(first):
    assert (inter.user_ids[inter.user[row]], inter.item_ids[inter.item[row]]) == (u, i)
    assert (inter.rating[row], inter.timestamp[row]) == (float(r), int(t))
