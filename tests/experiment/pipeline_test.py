"""End-to-end: the real binary on the quick config and real ML-100K; resume after a kill.

The recompute test re-derives every metric of results.json's first seed from
rankings_<name>.csv and the raw ratings file alone, with code independent of
sslmetric.eval (plain Python over the RecBole file).
"""

import collections
import csv
import json
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from sslmetric.experiment import pipeline

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIG = REPO / "experiments" / "configs" / "movielens_100k.py"
METHODS = ("ssl", "siamese", "spe", "random", "popularity", "genre_jaccard")

# Smaller than `quick`: enough steps to exercise every stage and a checkpoint.
TINY = ["--config.siamese.num_steps=12", "--config.spe.num_steps=12",
        "--config.ssl.num_steps=6", "--config.ssl.eval_every=3",
        "--config.checkpoint_every=2", "--config.ssl.num_inducing=32"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, shared_data_dir):
  workdir = tmp_path_factory.mktemp("quick")
  env = dict(os.environ, PJRT_NPROC="1")
  cmd = [sys.executable, "-m", "experiments.main", f"--config={CONFIG}:quick",
         f"--workdir={workdir}", f"--config.data_dir={shared_data_dir}", *TINY]
  proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  return workdir, proc.stdout


def test_binary_writes_the_results_contract(quick_run):
  workdir, stdout = quick_run
  res = json.loads((workdir / "results.json").read_text())
  assert set(res["methods"]) == set(METHODS)
  for name in METHODS:
    m = res["methods"][name]
    for key in ("hr@10", "mrr@10", "ndcg@10", "ndcg_full@10"):
      assert 0.0 <= m[key] <= 1.0 and key in m["std"]
    assert m["n_test_items"] == res["protocol"]["n_test_items"] > 0
    assert (workdir / f"rankings_{name}.csv").exists()
  assert (workdir / "curves.csv").exists() and (workdir / "curves.png").exists()
  with open(workdir / "curves.csv") as f:
    ssl_steps = [int(r["step"]) for r in csv.DictReader(f) if r["method"] == "ssl"]
  assert ssl_steps == [0, 3, 6]
  assert "popularity" in stdout and "HR@10" in stdout


def _raw_truth(inter_path: pathlib.Path, window: int) -> dict:
  """G(x) by the METHOD.md §3 definition, from the raw RecBole file (raw ids)."""
  seqs = collections.defaultdict(list)
  with open(inter_path) as f:
    next(f)
    for line in f:
      u, i, _, t = line.rstrip("\n").split("\t")
      seqs[u].append((int(float(t)), int(i)))
  truth = collections.defaultdict(set)
  for events in seqs.values():
    events.sort()  # by time, ties by item id
    items = [i for _, i in events]
    for p, x in enumerate(items):
      for q in range(max(0, p - window), min(len(items), p + window + 1)):
        if items[q] != x:
          truth[x].add(items[q])
  return truth


def _metrics(ranked: list, g: set, k: int) -> dict:
  hits = [item in g for item in ranked[:k]]
  weights = [1.0] + [1.0 / math.log2(r) for r in range(2, k + 1)]
  dcg = sum(w for w, h in zip(weights, hits) if h)
  n_hit = sum(hits)
  first = next((r for r, h in enumerate(hits, 1) if h), None)
  return {"hr@10": n_hit / k, "mrr@10": 1.0 / first if first else 0.0,
          "ndcg@10": dcg / sum(weights[:n_hit]) if n_hit else 0.0,
          "ndcg_full@10": dcg / sum(weights[:min(k, len(g))])}


def test_results_recomputable_from_rankings_and_raw_data(quick_run, shared_data_dir):
  workdir, _ = quick_run
  res = json.loads((workdir / "results.json").read_text())
  truth = _raw_truth(shared_data_dir / "ml-100k" / "ml-100k.inter",
                     res["protocol"]["ground_truth_window"])
  for name in METHODS:
    lists = collections.defaultdict(list)
    with open(workdir / f"rankings_{name}.csv") as f:
      for row in csv.DictReader(f):
        lists[int(row["test_item"])].append((int(row["rank"]), int(row["item"])))
    assert len(lists) == res["methods"][name]["n_test_items"]
    per_item = []
    for x, ranked in lists.items():
      ranked = [i for _, i in sorted(ranked)]
      assert len(ranked) == 10 and x not in ranked
      per_item.append(_metrics(ranked, truth[x], 10))
    for key in ("hr@10", "mrr@10", "ndcg@10", "ndcg_full@10"):
      expect = float(np.mean([m[key] for m in per_item]))
      got = res["methods"][name]["per_seed"][0][key]
      assert got == pytest.approx(expect, abs=1e-12), (name, key)


class _Killed(Exception):
  pass


def test_killed_run_resumes_to_the_same_result(tmp_path, shared_data_dir, monkeypatch):
  from experiments.configs import movielens_100k
  config = movielens_100k.get_config("quick")
  config.data_dir = str(shared_data_dir)
  config.channels = ("genres", "year", "avg_rating", "item_id")
  for flag in TINY:
    key, value = flag[len("--config."):].split("=")
    node = config
    *path, leaf = key.split(".")
    for p in path:
      node = node[p]
    node[leaf] = type(node[leaf])(value)

  whole = pipeline.run(config, tmp_path / "whole")

  # Kill the second run in the middle of SSL training, right after a checkpoint.
  from sslmetric.experiment import checkpoint
  real_save = checkpoint.save
  saves = collections.Counter()

  def save_then_die(path, tree):
    real_save(path, tree)
    if pathlib.Path(path).name == "ssl.ckpt":
      saves["ssl"] += 1
      if saves["ssl"] == 2:  # after step 4 of 6
        raise _Killed()

  monkeypatch.setattr(checkpoint, "save", save_then_die)
  with pytest.raises(_Killed):
    pipeline.run(config, tmp_path / "broken")
  monkeypatch.setattr(checkpoint, "save", real_save)
  resumed = pipeline.run(config, tmp_path / "broken")
  for name in METHODS:
    assert resumed["methods"][name]["per_seed"] == whole["methods"][name]["per_seed"], name
