"""Immutable containers for interaction logs, item meta data and model channels.

Every loader returns a :class:`Dataset`: dense integer indices for users and items (with
the raw-id vocabularies to map back), the items' raw meta data in an :class:`Items`, and
a :class:`FilterReport` that counts every row a loader dropped or merged, so nothing is
silently lost.

Channels (:class:`Channel`, :class:`Catalogue`) are what the towers read. They are built
from a dataset *and a split* by :mod:`sslmetric.data.channels`, because one channel (the
item's average rating) must use only training-period ratings.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Optional

import numpy as np


class DataError(ValueError):
  """Bad input data. The message names the file, line and field, and what to do."""


def data_error(path, line: Optional[int], field: Optional[str], problem: str,
               fix: str = "") -> DataError:
  """Builds a :class:`DataError` with a uniform `file:line: field: problem. fix` text."""
  where = str(path)
  if line is not None:
    where += f":{line}"
  what = f"field '{field}': " if field else ""
  msg = f"{where}: {what}{problem}"
  if fix:
    msg += f". {fix}"
  return DataError(msg)


@dataclasses.dataclass(frozen=True)
class Interactions:
  """A log of (user, item, rating, time) events with dense indices.

  Attributes:
    user: int32 [N], index into `user_ids`.
    item: int32 [N], index into `item_ids` (the same item order as :class:`Items`).
    rating: float32 [N], explicit rating on the dataset's scale.
    timestamp: int64 [N], unix seconds.
    user_ids: [U] raw user ids (str), position = dense index.
    item_ids: [I] raw item ids (str), position = dense index.
  """
  user: np.ndarray
  item: np.ndarray
  rating: np.ndarray
  timestamp: np.ndarray
  user_ids: np.ndarray
  item_ids: np.ndarray

  def __post_init__(self):
    n = len(self.user)
    for name in ("item", "rating", "timestamp"):
      if len(getattr(self, name)) != n:
        raise ValueError(f"Interactions.{name} has {len(getattr(self, name))} rows, "
                         f"user has {n}")

  @property
  def num_users(self) -> int:
    return len(self.user_ids)

  @property
  def num_items(self) -> int:
    return len(self.item_ids)

  def __len__(self) -> int:
    return len(self.user)

  def subset(self, mask: np.ndarray) -> "Interactions":
    """Rows where `mask` is true; vocabularies (and so indices) are kept."""
    return dataclasses.replace(self, user=self.user[mask], item=self.item[mask],
                               rating=self.rating[mask],
                               timestamp=self.timestamp[mask])


@dataclasses.dataclass(frozen=True)
class Items:
  """Raw item meta data, known for every item (cold ones too).

  Attributes:
    item_ids: [I] raw item ids (str), same order as `Interactions.item_ids`.
    titles: [I] str, the title or name ('' when unknown).
    years: float64 [I], release year; NaN when unknown.
    categories: bool [I, G] multi-hot genres / categories.
    category_names: [G] names of the categories' columns.
  """
  item_ids: np.ndarray
  titles: np.ndarray
  years: np.ndarray
  categories: np.ndarray
  category_names: tuple

  def __post_init__(self):
    i = len(self.item_ids)
    for name in ("titles", "years", "categories"):
      if len(getattr(self, name)) != i:
        raise ValueError(f"Items.{name} has {len(getattr(self, name))} rows, "
                         f"item_ids has {i}")
    if self.categories.shape[1] != len(self.category_names):
      raise ValueError("Items.categories columns != len(category_names)")


@dataclasses.dataclass(frozen=True)
class FilterReport:
  """Ordered (what, count) records of every row a loader dropped, merged or fixed."""
  entries: tuple = ()

  def add(self, what: str, count: int) -> "FilterReport":
    return FilterReport(self.entries + ((what, int(count)),))

  def as_dict(self) -> dict:
    return {what: count for what, count in self.entries}

  def lines(self) -> list:
    return [f"{count:>10,d}  {what}" for what, count in self.entries]


@dataclasses.dataclass(frozen=True)
class Dataset:
  """What every loader returns."""
  name: str
  interactions: Interactions
  items: Items
  rating_scale: tuple  # (min, max) of the declared rating scale
  report: FilterReport = FilterReport()
  source: str = ""  # where the files were read from


class ChannelKind(str, enum.Enum):
  MULTI_HOT = "multi_hot"  # values: float32 [I, G] in {0, 1}
  NUMERIC = "numeric"  # values: float32 [I, 1], standardised
  TEXT = "text"  # values: float32 [I, E], a dense text embedding
  ITEM_ID = "item_id"  # values: int32 [I], index into an embedding table


@dataclasses.dataclass(frozen=True)
class Channel:
  """One meta-data channel as the towers read it."""
  name: str
  kind: ChannelKind
  values: np.ndarray
  description: str = ""

  @property
  def dim(self) -> int:
    return 1 if self.values.ndim == 1 else int(self.values.shape[1])


@dataclasses.dataclass(frozen=True)
class Catalogue:
  """The channels of every item, row i = dense item index i."""
  item_ids: np.ndarray
  channels: tuple  # of Channel

  @property
  def names(self) -> tuple:
    return tuple(c.name for c in self.channels)

  @property
  def num_items(self) -> int:
    return len(self.item_ids)

  def __getitem__(self, name: str) -> Channel:
    for c in self.channels:
      if c.name == name:
        return c
    raise KeyError(f"no channel {name!r}; channels are {self.names}")
