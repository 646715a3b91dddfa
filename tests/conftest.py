"""Shared test set-up: float64 everywhere (float32 tests ask for it), real data paths."""

import os
import pathlib
from typing import Callable

# docs/threading.md: PJRT_NPROC=1 avoids an XLA:CPU deadlock; OpenBLAS threads made small
# LAPACK calls 10-100x slower on a busy machine. Set here because scipy (and its OpenBLAS)
# may be imported by a test module before sslmetric can set them.
os.environ.setdefault("PJRT_NPROC", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax
import pandas as pd
import pytest

from sslmetric.data import movielens
from sslmetric.data.types import Dataset

jax.config.update("jax_enable_x64", True)

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data_dir() -> pathlib.Path:
  """`../shared/data` beside the checkout (real MovieLens-100K in RecBole layout)."""
  if not (SHARED_DATA / "ml-100k" / "ml-100k.inter").exists():
    pytest.fail(f"real data not found at {SHARED_DATA}; tests expect ../shared/data "
                "beside the checkout (see README)")
  return SHARED_DATA


@pytest.fixture(scope="session")
def ml100k_dataset(shared_data_dir) -> Dataset:
  """The real ML-100K through `load_movielens` (RecBole layout), loaded once a session.

  Users and items are indexed in sorted raw-id order (numerically). Shared by every test
  that asks for it: do not modify its arrays.
  """
  return movielens.load_movielens(shared_data_dir / "ml-100k")


@pytest.fixture(scope="session")
def ml100k_ratings_frame(shared_data_dir) -> pd.DataFrame:
  """The raw `ml-100k.inter` as read by plain pandas, every field a string.

  Columns user_id, item_id, rating, timestamp (the ':type' suffixes dropped), in file
  order. It does not go through sslmetric's loaders, so tests use it as an independent
  reference for what they compute from :func:`ml100k_dataset`. Do not modify it.
  """
  inter = pd.read_csv(shared_data_dir / "ml-100k" / "ml-100k.inter", sep="\t", dtype=str)
  inter.columns = [c.split(":")[0] for c in inter.columns]
  return inter


@pytest.fixture(scope="session")
def write_ml100k_grouplens(shared_data_dir) -> Callable[[pathlib.Path], pathlib.Path]:
  """A function `dest -> dest` writing the real ML-100K in the GroupLens layout.

  It rewrites the RecBole copy as GroupLens ships it: u.data (the rating rows), u.item
  ('|', latin-1, "Title (Year)", "(V)" tags, one flag per genre) and u.genre.
  """
  src = shared_data_dir / "ml-100k"
  genres = movielens.MOVIELENS_GENRES

  def write(dest: pathlib.Path) -> pathlib.Path:
    dest.mkdir(parents=True, exist_ok=True)
    inter = (src / "ml-100k.inter").read_text().splitlines()[1:]
    (dest / "u.data").write_text("".join(line + "\n" for line in inter))
    out = []
    for line in (src / "ml-100k.item").read_text("utf-8").splitlines()[1:]:
      item_id, title, year, classes = line.split("\t")
      if year == "V":  # GroupLens: "... (1995) (V)"; RecBole kept "(1995)" in the title
        title, date = f"{title} (V)", "01-Jan-1995"
      elif year == "unkonwn":
        title, date = "unknown", ""
      else:
        title, date = f"{title} ({year})", f"01-Jan-{year}"
      flags = ["1" if g in classes.split() else "0" for g in genres]
      out.append("|".join([item_id, title, date, "", "http://us.imdb.com/"] + flags))
    (dest / "u.item").write_bytes(("\n".join(out) + "\n").encode("latin-1"))
    (dest / "u.genre").write_text("".join(f"{g}|{j}\n" for j, g in enumerate(genres)))
    return dest

  return write
