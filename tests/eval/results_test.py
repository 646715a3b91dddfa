"""Tests of the results contract: results.json, rankings CSV, recomputation, table."""

import json

import numpy as np
import pandas as pd
import pytest

from sslmetric.data.types import DataError
from sslmetric.eval import baselines
from sslmetric.eval import ground_truth as gt_lib
from sslmetric.eval import metrics
from sslmetric.eval import ranking
from sslmetric.eval import results
from sslmetric.eval import split as split_lib


def test_aggregate_seeds():
  per_seed = [{"hr@10": 0.1, "mrr@10": 0.3}, {"hr@10": 0.2, "mrr@10": 0.5},
              {"hr@10": 0.4, "mrr@10": 0.4}]
  agg = results.aggregate_seeds(per_seed)
  assert agg["hr@10"] == pytest.approx(0.7 / 3)
  assert agg["std"]["hr@10"] == pytest.approx(np.std([0.1, 0.2, 0.4], ddof=1))
  assert agg["std"]["mrr@10"] == pytest.approx(0.1)
  assert agg["per_seed"] == per_seed
  assert results.aggregate_seeds(per_seed[:1])["std"] == {"hr@10": 0.0, "mrr@10": 0.0}
  with pytest.raises(ValueError, match="seed 1 has keys"):
    results.aggregate_seeds([{"a": 1.0}, {"b": 1.0}])


def test_results_json_schema(tmp_path):
  keys = metrics.metric_keys(10)
  res = results.MethodResult(
      per_seed=tuple({k: 0.1 * (j + 1) for k in keys} for j in range(3)),
      n_test_items=7, train_seconds=(1.0, 2.0, 3.0))
  doc = results.write_results_json(
      tmp_path / "out" / "results.json", dataset="toy", protocol={"f": 0.05, "k": 10},
      seeds=[0, 1, 2], methods={"popularity": res})
  read = json.loads((tmp_path / "out" / "results.json").read_text())
  assert read == doc
  assert set(read) == {"dataset", "protocol", "seeds", "methods", "versions"}
  m = read["methods"]["popularity"]
  assert set(m) == set(keys) | {"std", "per_seed", "n_test_items", "train_seconds"}
  assert m["hr@10"] == pytest.approx(0.2) and m["train_seconds"] == pytest.approx(2.0)
  assert set(read["versions"]) == set(results.VERSION_PACKAGES)
  assert read["versions"]["numpy"] == np.__version__
  with pytest.raises(ValueError, match="lower-case"):
    results.write_results_json(tmp_path / "r.json", dataset="toy", protocol={},
                               seeds=[0, 1, 2], methods={"SSL": res})
  with pytest.raises(ValueError, match="3 per-seed results for 2 seeds"):
    results.write_results_json(tmp_path / "r.json", dataset="toy", protocol={},
                               seeds=[0, 1], methods={"ssl": res})
  table = results.format_table({"popularity": res,
                                "random": read["methods"]["popularity"]})
  lines = table.splitlines()
  assert lines[0].split()[:3] == ["method", "HR@10", "MRR@10"]
  assert lines[2].startswith("popularity") and "0.2000 ± 0.1000" in lines[2]
  assert len(lines) == 4


def test_rankings_csv_round_trip_and_errors(tmp_path):
  ids = np.array(["10", "20", "30", "40"])
  topk = np.array([[1, 2], [0, 3]])
  path = tmp_path / "rankings_x.csv"
  results.write_rankings_csv(path, topk, test_items=np.array([0, 2]), item_ids=ids)
  assert path.read_text().splitlines() == [
      "test_item,rank,item", "10,1,20", "10,2,30", "30,1,10", "30,2,40"]
  got = results.recompute_metrics_from_rankings(path, {"10": ["30"], "30": ["20"]})
  assert got == {"hr@2": 0.25, "mrr@2": 0.25, "ndcg@2": 0.5, "ndcg_full@2": 0.5}
  path.write_text("test_item,rank,item\n10,1,20\n10,3,30\n")
  with pytest.raises(DataError, match=r"rankings_x.csv:3: field 'rank'"):
    results.recompute_metrics_from_rankings(path, {"10": ["30"]})
  path.write_text("item,rank\n")
  with pytest.raises(DataError, match=":1:"):
    results.recompute_metrics_from_rankings(path, {})


def _truth_from_raw(raw: pd.DataFrame, item_order: dict, test_ids: set, window: int):
  """G(x) by raw ids, straight from the raw rows (independent of the library)."""
  rows = sorted(zip(raw["user_id"], raw["timestamp"].astype(float),
                    raw["item_id"].map(item_order), raw["item_id"]))
  seqs = {}
  for u, _, _, x in rows:
    seqs.setdefault(u, []).append(x)
  out = {}
  for seq in seqs.values():
    for i, x in enumerate(seq):
      if x in test_ids:
        near = seq[max(0, i - window):i] + seq[i + 1:i + 1 + window]
        out.setdefault(x, set()).update(y for y in near if y != x)
  return out


def test_results_recomputable_from_csv_and_raw_data(ml100k_dataset, ml100k_ratings_frame,
                                                     tmp_path):
  ds, raw = ml100k_dataset, ml100k_ratings_frame
  log = ds.interactions
  s = split_lib.temporal_split(log, f=0.05)
  truth = gt_lib.ground_truth(log, s.test_items, window=10)
  seeds = [0, 1, 2]
  methods, first_lists = {}, {}
  for name in ("random", "popularity"):
    per_seed = []
    for seed in seeds:
      fn = (baselines.random_scores(seed=seed) if name == "random"
            else baselines.popularity_scores(s.train))
      top = ranking.topk(fn, truth.items, num_items=log.num_items, k=10)
      per_seed.append(metrics.mean_metrics(metrics.evaluate_rankings(top, truth)))
      first_lists.setdefault(name, top)
    methods[name] = results.MethodResult(per_seed=tuple(per_seed),
                                         n_test_items=len(truth),
                                         train_seconds=(0.0,) * len(seeds))
  doc = results.write_results_json(tmp_path / "results.json", dataset="ml-100k",
                                   protocol={"f": 0.05, "window": 10, "k": 10},
                                   seeds=seeds, methods=methods)
  item_order = {x: j for j, x in enumerate(ds.items.item_ids)}  # raw id -> dense index
  raw_truth = _truth_from_raw(raw, item_order, set(log.item_ids[s.test_items]), 10)
  for name, top in first_lists.items():
    csv_path = tmp_path / f"rankings_{name}.csv"
    results.write_rankings_csv(csv_path, top, test_items=truth.items,
                               item_ids=log.item_ids)
    again = results.recompute_metrics_from_rankings(csv_path, raw_truth)
    want = doc["methods"][name]["per_seed"][0]
    assert again.keys() == want.keys()
    for key in want:
      assert again[key] == pytest.approx(want[key], rel=1e-12)
  assert doc["methods"]["popularity"]["std"]["hr@10"] == 0.0  # deterministic ranker
  assert doc["methods"]["random"]["std"]["hr@10"] > 0.0
