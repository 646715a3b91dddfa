"""Tables and figures of the personal protocol (paper's Figs. 3 and 5)."""

from __future__ import annotations

import csv
import pathlib

import numpy as np

from sslmetric.eval.metrics import metric_keys


def table(out: dict, *, k: int = 10) -> str:
  """Per-user base vs personalised metrics, then the means and the share improved."""
  keys = metric_keys(k)[:3]
  head = (f"{'user':>6} {'n':>4} {'q':>3}  " +
          "  ".join(f"{key + ' base':>13} {'pers':>6} {'ssl_w':>6}" for key in keys))
  lines = [head, "-" * len(head)]
  for r in out["users"]:
    lines.append(f"{r['user']:>6} {r['n_interactions']:>4} {r['n_query_items']:>3}  " +
                 "  ".join(f"{r['base'][key]:>13.4f} {r['personalized'][key]:>6.4f} "
                           f"{r['from_ssl_w'][key]:>6.4f}" for key in keys))
  lines.append("-" * len(head))
  m = out["mean"]
  lines.append(f"{'mean':>6} {'':>4} {'':>3}  " +
               "  ".join(f"{m['base'][key]:>13.4f} {m['personalized'][key]:>6.4f} "
                         f"{m['from_ssl_w'][key]:>6.4f}" for key in keys))
  lines.append("share of users improved over base (personalized from meta w): " +
               ", ".join(f"{key} {out['share_improved'][key]:.0%}" for key in keys))
  lines.append("share improved, personalised from the SSL w (no meta-learning): " +
               ", ".join(f"{key} {out['share_improved_from_ssl_w'][key]:.0%}"
                         for key in keys))
  lines.append("share tied with base (personalized): " +
               ", ".join(f"{key} {out['share_tied'][key]:.0%}" for key in keys))
  return "\n".join(lines)


def write(workdir, out: dict, *, k: int = 10) -> None:
  """personal_curves.csv, personal_curves.png (Fig. 5), personal_users.png (Fig. 3)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  workdir = pathlib.Path(workdir)
  keys = metric_keys(k)
  with open(workdir / "personal_curves.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["variant", "iteration", *keys])
    for row in out["curves"]:
      w.writerow([row["variant"], row["iteration"], *(f"{row[key]:.6f}" for key in keys)])

  fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
  for ax, key in zip(axes, keys[:3]):
    for variant, style in (("personalized", "-o"), ("from_ssl_w", "-s")):
      rows = [r for r in out["curves"] if r["variant"] == variant]
      ax.plot([max(r["iteration"], 1) for r in rows], [r[key] for r in rows], style,
              ms=3, label=variant)
    ax.axhline(out["mean"]["base"][key], ls="--", color="k", lw=1, label="base SSL")
    ax.set_xscale("log")
    ax.set_xlabel("personalisation iterations (0 drawn at 1)")
    ax.set_title(f"mean {key} over users")
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(workdir / "personal_curves.png", dpi=110)
  plt.close(fig)

  users = out["users"]
  x = np.arange(len(users))
  fig, axes = plt.subplots(3, 1, figsize=(max(8, 0.5 * len(users)), 8), sharex=True)
  for ax, key in zip(axes, keys[:3]):
    ax.bar(x - 0.2, [r["base"][key] for r in users], 0.4, label="base SSL")
    ax.bar(x + 0.2, [r["personalized"][key] for r in users], 0.4, label="personalized")
    ax.set_ylabel(key)
    ax.grid(alpha=0.3, axis="y")
  axes[0].legend(fontsize=8)
  axes[-1].set_xticks(x, [r["user"] for r in users], rotation=90)
  axes[-1].set_xlabel("user")
  fig.tight_layout()
  fig.savefig(workdir / "personal_users.png", dpi=110)
  plt.close(fig)
