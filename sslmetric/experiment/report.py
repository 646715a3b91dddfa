"""curves.csv and the Fig. 1 style plot (metrics over SSL iterations, references flat)."""

from __future__ import annotations

import csv
import pathlib
from typing import Mapping

import numpy as np

from sslmetric.eval.metrics import metric_keys

#: Methods trained iteratively: their curves are drawn; the others are flat references.
CURVE_METHODS = ("ssl",)


def curves_rows(records: Mapping) -> list:
  """Rows (method, seed, step, metrics...) from {seed: {method: saved record}}.

  Iterative methods contribute one row per evaluation in their history; the others one
  row at step -1 (their final value).
  """
  rows = []
  for seed, by_method in records.items():
    for method, rec in by_method.items():
      hist = rec.get("history") or []
      if hist:
        for h in hist:
          rows.append({"method": method, "seed": seed, **h})
      else:
        rows.append({"method": method, "seed": seed, "step": -1, **rec["metrics"]})
  return rows


def write_curves_csv(path, rows: list) -> None:
  keys = [k for k in rows[0] if k not in ("method", "seed", "step")] if rows else []
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["method", "seed", "step", *keys])
    for r in rows:
      w.writerow([r["method"], r["seed"], r["step"], *(f"{r[k]:.6f}" for k in keys)])


def _mean_curve(rows, method, key):
  steps = sorted({r["step"] for r in rows if r["method"] == method})
  mean = [np.mean([r[key] for r in rows if r["method"] == method and r["step"] == s])
          for s in steps]
  return np.array(steps), np.array(mean)


def plot_curves(path, rows: list, *, k: int = 10, title: str = "") -> None:
  """Four panels (HR, MRR, NDCG, NDCG_full @k): SSL's mean curve; others as lines."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  keys = metric_keys(k)
  fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.6))
  methods = sorted({r["method"] for r in rows})
  colours = dict(zip(methods, plt.cm.tab10.colors))
  for ax, key in zip(axes, keys):
    for method in methods:
      steps, mean = _mean_curve(rows, method, key)
      if method in CURVE_METHODS and len(steps) > 1:
        ax.plot(steps, mean, "-o", ms=3, color=colours[method], label=method)
      else:
        ax.axhline(mean[-1], ls="--", lw=1.2, color=colours[method], label=method)
    ax.set_xlabel("SSL iteration")
    ax.set_title(key)
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=8)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(pathlib.Path(path), dpi=110)
  plt.close(fig)
