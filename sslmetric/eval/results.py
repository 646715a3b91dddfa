"""The results contract (METHOD.md §5): results.json, rankings_<NAME>.csv and a table.

results.json:
  {"dataset", "protocol": {...}, "seeds": [...],
   "methods": {NAME: {"hr@10", "mrr@10", "ndcg@10", "ndcg_full@10",  # means over seeds
                      "std": {same keys}, "per_seed": [{same keys}, ...],
                      "n_test_items", "train_seconds"}},
   "versions": {package: version}}

The spread `std` is the sample standard deviation over seeds (ddof = 1); exactly 0 for
one seed or when all seeds agree.
`train_seconds` is the mean over seeds. rankings_<NAME>.csv holds the first seed's lists
(`test_item,rank,item`, raw ids, rank 1..k) so anyone can recompute `per_seed[0]` with
:func:`recompute_metrics_from_rankings` and the raw data.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.metadata
import json
import os
import pathlib
import re
import tempfile
from typing import Mapping, Sequence

import numpy as np

from sslmetric.data.types import data_error
from sslmetric.eval.metrics import metric_keys, metrics_from_hits

VERSION_PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "pandas", "sslmetric")
_NAME = re.compile(r"^[a-z0-9_]+$")


@dataclasses.dataclass(frozen=True)
class MethodResult:
  """One method's metrics over seeds.

  Attributes:
    per_seed: one {metric key: float} dict per seed, in the order of the seeds.
    n_test_items: number of test items the metrics average over.
    train_seconds: one training time (seconds) per seed (0 for trivial rankers).
  """
  per_seed: tuple
  n_test_items: int
  train_seconds: tuple = ()

  def to_json(self) -> dict:
    out = aggregate_seeds(list(self.per_seed))
    out["n_test_items"] = int(self.n_test_items)
    out["train_seconds"] = (float(np.mean(self.train_seconds)) if self.train_seconds
                            else 0.0)
    return out


def aggregate_seeds(per_seed: Sequence[Mapping]) -> dict:
  """{key: mean over seeds, "std": {key: sample std}, "per_seed": [...]}.

  Args:
    per_seed: dicts with the same float-valued keys, one per seed.
  """
  if not per_seed:
    raise ValueError("no seeds to aggregate")
  keys = list(per_seed[0])
  for j, d in enumerate(per_seed):
    if set(d) != set(keys):
      raise ValueError(f"seed {j} has keys {sorted(d)}, seed 0 has {sorted(keys)}")
  vals = {key: np.array([float(d[key]) for d in per_seed]) for key in keys}
  out = {key: float(v.mean()) for key, v in vals.items()}
  # Exactly 0 when the seeds agree (v.std would leave rounding noise of the mean).
  out["std"] = {key: float(v.std(ddof=1)) if np.ptp(v) > 0 else 0.0
                for key, v in vals.items()}
  out["per_seed"] = [{key: float(d[key]) for key in keys} for d in per_seed]
  return out


def package_versions(packages: Sequence[str] = VERSION_PACKAGES) -> dict:
  """{package: installed version, or 'not installed'}."""
  out = {}
  for name in packages:
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      out[name] = "not installed"
  return out


def _jsonable(x):
  if isinstance(x, Mapping):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, np.ndarray):
    return _jsonable(x.tolist())
  if isinstance(x, np.generic):
    return x.item()
  return x


def _atomic_write(path: pathlib.Path, text: str):
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
  with os.fdopen(fd, "w", newline="") as f:
    f.write(text)
  os.replace(tmp, path)


def write_results_json(path, *, dataset: str, protocol: Mapping, seeds: Sequence[int],
                       methods: Mapping, versions: Mapping | None = None) -> dict:
  """Writes results.json (atomically) and returns what it wrote.

  Args:
    path: file to write.
    dataset: dataset name.
    protocol: every protocol setting (f, window, k, flags, …).
    seeds: the seeds, in the order of each method's `per_seed`.
    methods: {NAME: MethodResult or an already aggregated dict}; NAME is lower-case
      [a-z0-9_].
    versions: {package: version}; default :func:`package_versions`.
  """
  out_methods = {}
  for name, res in methods.items():
    if not _NAME.match(name):
      raise ValueError(f"method name {name!r} must be lower-case [a-z0-9_]")
    out_methods[name] = res.to_json() if isinstance(res, MethodResult) else dict(res)
    if len(out_methods[name]["per_seed"]) != len(seeds):
      raise ValueError(f"method {name} has {len(out_methods[name]['per_seed'])} "
                       f"per-seed results for {len(seeds)} seeds")
  doc = _jsonable({"dataset": dataset, "protocol": dict(protocol),
                   "seeds": [int(s) for s in seeds], "methods": out_methods,
                   "versions": dict(package_versions() if versions is None
                                    else versions)})
  _atomic_write(pathlib.Path(path), json.dumps(doc, indent=2, allow_nan=False) + "\n")
  return doc


def write_rankings_csv(path, topk: np.ndarray, *, test_items: np.ndarray,
                       item_ids: np.ndarray):
  """Writes `test_item,rank,item` rows with RAW item ids, rank 1..k.

  Args:
    path: file to write.
    topk: int [q, k] ranked item indices, row j for test item `test_items[j]`.
    test_items: int [q] item indices of the queries.
    item_ids: [I] raw item ids (position = index).
  """
  topk = np.asarray(topk)
  test_items = np.asarray(test_items)
  if topk.ndim != 2 or topk.shape[0] != len(test_items):
    raise ValueError(f"topk {topk.shape} does not match {len(test_items)} test items")
  ids = np.asarray(item_ids).astype(str)
  q, k = topk.shape
  lines = ["test_item,rank,item"]
  for j in range(q):
    x = ids[test_items[j]]
    lines.extend(f"{x},{r + 1},{ids[topk[j, r]]}" for r in range(k))
  for name in (ids[test_items].tolist() + ids[topk.reshape(-1)].tolist()):
    if any(ch in name for ch in ',"\n\r'):
      raise ValueError(f"raw item id {name!r} needs CSV quoting; not supported")
  _atomic_write(pathlib.Path(path), "\n".join(lines) + "\n")


def read_rankings_csv(csv_path) -> tuple:
  """(test item raw ids [q], ranked raw ids [q][k]) from a rankings CSV; checks ranks."""
  path = pathlib.Path(csv_path)
  lists = {}
  with open(path, newline="") as f:
    reader = csv.reader(f)
    header = next(reader, None)
    if header != ["test_item", "rank", "item"]:
      raise data_error(path, 1, None, f"header is {header}, expected test_item,rank,item",
                       "write the file with write_rankings_csv")
    for line, row in enumerate(reader, start=2):
      if len(row) != 3:
        raise data_error(path, line, None, f"{len(row)} fields, expected 3")
      x, rank, y = row
      try:
        r = int(rank)
      except ValueError:
        raise data_error(path, line, "rank", f"{rank!r} is not an integer") from None
      got = lists.setdefault(x, [])
      if r != len(got) + 1:
        raise data_error(path, line, "rank", f"rank {r} for test item {x} follows "
                         f"rank {len(got)}", "ranks must run 1..k in order per test item")
      got.append(y)
  ks = {len(v) for v in lists.values()}
  if len(ks) > 1:
    raise data_error(path, None, "rank", f"lists have different lengths {sorted(ks)}")
  return list(lists), list(lists.values())


def recompute_metrics_from_rankings(csv_path, truth_by_raw_id: Mapping) -> dict:
  """Mean metrics recomputed from a rankings CSV and {raw test id: raw ids of G(x)}.

  Every test item of the CSV needs a ground truth; the means are over the CSV's items.
  """
  tests, lists = read_rankings_csv(csv_path)
  if not tests:
    raise data_error(csv_path, None, None, "no rankings in the file")
  missing = [x for x in tests if x not in truth_by_raw_id]
  if missing:
    raise ValueError(f"{len(missing)} test items of {csv_path} have no ground truth "
                     f"(e.g. {missing[0]})")
  truth = [set(map(str, truth_by_raw_id[x])) for x in tests]
  hits = np.array([[y in g for y in lst] for lst, g in zip(lists, truth)], bool)
  per_item = metrics_from_hits(hits, np.array([len(g) for g in truth]))
  return {key: float(np.mean(v)) for key, v in per_item.items()}


def format_table(methods: Mapping, *, k: int = 10) -> str:
  """Plain-text table: method, the four metrics as mean ± std, n_test_items, train s.

  Args:
    methods: {NAME: MethodResult or its results.json dict}.
    k: the cut-off in the metric keys.
  """
  keys = metric_keys(k)
  head = ["method", f"HR@{k}", f"MRR@{k}", f"NDCG@{k}", f"NDCG_full@{k}",
          "n_test_items", "train_s"]
  rows = []
  for name, res in methods.items():
    d = res.to_json() if isinstance(res, MethodResult) else res
    rows.append([name] + [f"{d[key]:.4f} ± {d['std'][key]:.4f}" for key in keys]
                + [str(d["n_test_items"]), f"{d['train_seconds']:.1f}"])
  widths = [max(len(r[c]) for r in [head] + rows) for c in range(len(head))]
  fmt = lambda r: "  ".join(v.ljust(w) if c == 0 else v.rjust(w)  # noqa: E731
                            for c, (v, w) in enumerate(zip(r, widths)))
  return "\n".join([fmt(head), "  ".join("-" * w for w in widths)]
                   + [fmt(r) for r in rows])
