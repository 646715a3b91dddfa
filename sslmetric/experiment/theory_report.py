"""Files of the theory check (`theory.py`): theory.csv, personal_recovery.csv, the
markdown summary table and the two plots."""

from __future__ import annotations

import csv
import pathlib
from typing import Sequence

import numpy as np

ERRORS = ("sup_abs", "mean_abs", "kernel_ratio")  # error keys of a run record (the slopes')
EXTRA = ("shape_abs", "spearman")  # further per-run measures


def write_csv(path, records: Sequence[dict]) -> None:
  """theory.csv: one row per run."""
  keys = ["fit", "n", "seed", "status", *ERRORS, *EXTRA, "nll_gap_per_item",
          "untrained_sup_abs", "untrained_mean_abs", "noise_var", "seconds"]
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(keys)
    for r in records:
      vals = dict(r, untrained_sup_abs=r["untrained"]["sup_abs"],
                  untrained_mean_abs=r["untrained"]["mean_abs"])
      w.writerow([vals.get(k) if not isinstance(vals.get(k), float) else
                  f"{vals[k]:.6g}" for k in keys])


def write_personal_csv(path, rows: Sequence[dict]) -> None:
  """personal_recovery.csv: one row per (user, n); w as space-separated (h..., b)."""
  keys = ["user", "n", "base_w_err", "gd_w_err", "mle_w_err", "base_mean_abs",
          "gd_mean_abs", "mle_mean_abs", "base_sup_abs", "gd_sup_abs", "mle_sup_abs",
          "gd_shape_abs", "mle_shape_abs", "gd_loss_drop_last10pct", "gd_finite",
          "mle_iters", "mle_finite"]
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(keys + ["w_star", "gd_w", "mle_w"])
    for r in rows:
      w.writerow([f"{r[k]:.6g}" if isinstance(r[k], float) else r[k] for k in keys]
                 + [" ".join(f"{v:.4g}" for v in r[k]) for k in ("w_star", "gd_w", "mle_w")])


def format_table(rows: Sequence[dict]) -> str:
  """Markdown table: fit, n, errors (mean ± std over seeds), Spearman, NLL gap, failures."""
  lines = ["| fit | n | sup\\|D−D*\\| | mean\\|D−D*\\| | max\\|k/k*−1\\| | shape error | "
           "Spearman ρ | NLL gap / item | untrained mean | failed |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

  def fmt(r, k):
    if np.isfinite(r[k + "_std"]):
      return f"{r[k]:.4f} ± {r[k + '_std']:.4f}"
    return f"{r[k]:.4f}"

  for r in rows:
    lines.append(f"| {r['fit']} | {r['n']} | {fmt(r, 'sup_abs')} | {fmt(r, 'mean_abs')} | "
                 f"{fmt(r, 'kernel_ratio')} | {fmt(r, 'shape_abs')} | {fmt(r, 'spearman')} | "
                 f"{fmt(r, 'nll_gap_per_item')} | {r['untrained_mean_abs']:.4f} | "
                 f"{r['failed']}/{r['runs']} |")
  return "\n".join(lines)


def _plt():
  import matplotlib  # noqa: PLC0415  (plotting only)
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415
  return plt


def plot_theory(path, records: Sequence[dict], reference: dict) -> None:
  """Log–log error vs n per fit: each seed a dot, the line their geometric mean (the
  slope fits are on log error too); the best constant D and a reference n^(−1/2) slope."""
  plt = _plt()
  keys = ERRORS + ("shape_abs",)
  fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 4))
  fits = list(dict.fromkeys(r["fit"] for r in records))
  colours = dict(zip(fits, plt.cm.tab10.colors))
  titles = {"sup_abs": "sup |D − D*| (held-out pairs)", "mean_abs": "mean |D − D*|",
            "kernel_ratio": "max |k/k* − 1| (Theorem 1)",
            "shape_abs": "mean |D − D* − c| (level removed)"}
  all_ns = sorted({r["n"] for r in records})
  for ax, key in zip(axes, keys):
    for fit in fits:
      ok = [r for r in records if r["fit"] == fit and np.isfinite(r[key]) and r[key] > 0]
      ns = sorted({r["n"] for r in ok})
      if not ns:
        continue
      ax.scatter([r["n"] for r in ok], [r[key] for r in ok], s=10, alpha=0.45,
                 color=colours[fit])
      geo = [float(np.exp(np.mean([np.log(r[key]) for r in ok if r["n"] == n]))) for n in ns]
      ax.plot(ns, geo, "-o", ms=4, color=colours[fit], label=fit)
      if fit == fits[0]:
        ref_ns = np.array([ns[0], ns[-1]], float)
        ax.plot(ref_ns, geo[0] * (ref_ns / ns[0]) ** -0.5, "k--", lw=1,
                label="reference slope n^-1/2 (not the bound)")
    ax.axhline(reference[key], ls=":", color="grey", label="best constant D (oracle)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(all_ns)
    ax.set_xticklabels([str(n) for n in all_ns])
    ax.minorticks_off()
    ax.set_xlabel("n (items, one rating each)")
    ax.set_title(titles[key], fontsize=10)
    ax.grid(alpha=0.3, which="both")
  axes[0].legend(fontsize=7)
  fig.suptitle("Recovery of a known metric D* by the GP likelihood "
               "(dots: seeds; lines: geometric mean)")
  fig.tight_layout()
  fig.savefig(pathlib.Path(path), dpi=110)
  plt.close(fig)


def plot_personal(path, rows: Sequence[dict]) -> None:
  """|w_u − w*_u| and mean |D_u − D*_u| vs the user's n (log–log): GD and MLE per user
  (thin lines) and their means, with w̄* (no personalisation) for reference."""
  plt = _plt()
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  users = sorted({r["user"] for r in rows})
  ns = sorted({r["n"] for r in rows})
  styles = {"gd": ("C0", "GD (personalize_users)"), "mle": ("C1", "MLE (L-BFGS)")}
  for ax, key in ((axes[0], "w_err"), (axes[1], "mean_abs")):
    for name, (colour, label) in styles.items():
      for u in users:
        rs = sorted((r for r in rows if r["user"] == u), key=lambda r: r["n"])
        ax.plot([r["n"] for r in rs], [r[f"{name}_{key}"] for r in rs], "-", color=colour,
                alpha=0.25, lw=1)
      ax.plot(ns, [np.mean([r[f"{name}_{key}"] for r in rows if r["n"] == n]) for n in ns],
              "-o", color=colour, label=f"{label}, mean over users")
    ax.plot(ns, [np.mean([r[f"base_{key}"] for r in rows if r["n"] == n]) for n in ns], ":",
            color="grey", label="w̄* (no personalisation)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(ns)
    ax.set_xticklabels([str(n) for n in ns])
    ax.minorticks_off()
    ax.set_xlabel("user's n (rated items)")
    ax.grid(alpha=0.3, which="both")
  axes[0].set_title("|w_u − w*_u| (h and b)")
  axes[1].set_title("mean |D_u − D*_u| on held-out pairs")
  axes[0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(pathlib.Path(path), dpi=110)
  plt.close(fig)
