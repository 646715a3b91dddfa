"""Theory check (issue 6): does the GP likelihood recover a known metric D*, and how fast?

The paper's Theorems 1–2 say: if r ~ N(0, K*) with K* = exp(−D*/2), fitting the GP
likelihood recovers D with sup |D − D*| small w.h.p. once n is large. We measure it on
`sslmetric.data.synthetic` data, whose truth is of the model's own form (same towers
architecture, fixed random weights), so the model class contains D*.

Fits (each for n in `config.ns`, for each seed; one draw of ratings per (n, seed)):

* ``w_only``: towers frozen at the truth, (w, σ²) fitted — a 4-parameter problem, the
  setting of the per-user part and the cleanest test of the theorems' rate. L-BFGS from
  several starts, the lowest NLL kept (the likelihood in w is multimodal).
* ``full``: towers + w + σ² from a random initialisation, as the SSL metric is fitted
  (Adam through `loop.train`).
* ``w_only_plain``: as `w_only` but with the plain objective (below) and Adam, at
  `config.plain.ns` only: it documents why the shifted objective is needed.

Objective: the PSD-shifted likelihood `theory_fit.psd_shifted_nll` (the plain NLL of
Eq. 6 drifts into the kernel's indefinite directions; theory_fit's docstring says why).

Measurement: D and D* as functions on held-out item pairs (all pairs of `eval.num_items`
fresh items; parameters are not comparable: towers have symmetries). Per run: sup and
mean |D − D*|, the kernel ratio error of Theorem 1, max |k/k* − 1| = max |e^(−(D−D*)/2) − 1|,
Spearman's ρ(D, D*), the NLL gap to the truth on the same data, and the same errors for the
untrained model. The slope of log error on log n is fitted per seed and pooled.
Theorem 2's constants are not computable here (docs/theory.md); the plot overlays a
reference n^(−1/2) slope, labelled as such.

Per-user part: towers frozen at the truth, each user u has w*_u; its first n items (a
prefix of one draw over its `max(ns)` items) fit w_u twice, both from w̄* = the truth's
w* with σ² = the true σ²: with `sslmetric.personalize.inner.personalize_users` (the
paper's gradient descent, step ω = step_scale / n), and to convergence with L-BFGS on the
psd_shift objective (the per-user MLE).
"""

from __future__ import annotations

import pathlib
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import scipy.stats

from sslmetric.data import synthetic as syn
from sslmetric.eval.results import package_versions
from sslmetric.experiment import checkpoint
from sslmetric.experiment.theory_fit import (  # noqa: F401  (re-exported)
    W_ONLY_NLL, Log, fit_adam, fit_lbfgs, fit_w_only, full_loss_fn, psd_shift, psd_shifted_nll,
    w_nll_fixed_noise, w_only_loss_fn, w_only_nll, w_params)
from sslmetric.experiment.theory_report import (  # noqa: F401  (re-exported)
    ERRORS, EXTRA, format_table, plot_personal, plot_theory, write_csv, write_personal_csv)
from sslmetric.model.distance import distance_matrix
from sslmetric.model.ensemble import EnsembleWeights
from sslmetric.model.gp import init_model_params, noise_raw, noise_variance
from sslmetric.model.towers import embed
from sslmetric.personalize.inner import personalize_users
from sslmetric.personalize.objective import make_user_data

FITS = ("w_only", "full", "w_only_plain")


# ----------------------------------------------------------------------------------------
# Measurement.


def recovery_errors(d: np.ndarray, d_star: np.ndarray) -> dict:
  """Errors of D against D* over the same pairs (any shape; NaN-free inputs).

      sup_abs = max |D − D*|,  mean_abs = mean |D − D*|,
      kernel_ratio = max |k/k* − 1| = max |exp(−(D − D*)/2) − 1|   (Theorem 1's quantity),
      shape_abs = min_c mean |D − D* − c| (c = the median of D − D*): the error left after
        the best constant shift, i.e. what is wrong beyond D's overall level,
      spearman = Spearman's ρ(D, D*) (does D order the pairs like D*?).
  """
  d, d_star = np.ravel(d), np.ravel(d_star)
  diff = d - d_star
  return {"sup_abs": float(np.max(np.abs(diff))), "mean_abs": float(np.mean(np.abs(diff))),
          "shape_abs": float(np.mean(np.abs(diff - np.median(diff)))),
          "kernel_ratio": float(np.max(np.abs(np.expm1(-0.5 * diff)))),
          "spearman": float(scipy.stats.spearmanr(d, d_star)[0])}


def constant_reference(d_star: np.ndarray) -> dict:
  """Errors of the best constant D ≡ c (an oracle that knows D*'s level, not its shape):
  sup_abs at the mid-range, mean_abs at the median."""
  d_star = np.ravel(d_star)
  mid = 0.5 * (d_star.max() + d_star.min())
  mean_abs = float(np.mean(np.abs(d_star - np.median(d_star))))
  return {"sup_abs": float(d_star.max() - mid), "mean_abs": mean_abs,
          "shape_abs": mean_abs,  # a constant's error is all shape
          "kernel_ratio": float(np.max(np.abs(np.expm1(-0.5 * (mid - d_star)))))}


def loglog_slope(ns: Sequence[float], errs: Sequence[float]) -> dict:
  """OLS of log err on log n: {"slope", "intercept", "se"} (se: NaN with < 3 points)."""
  x, y = np.log(np.asarray(ns, float)), np.log(np.asarray(errs, float))
  ok = np.isfinite(x) & np.isfinite(y)
  x, y = x[ok], y[ok]
  if len(x) < 2 or np.ptp(x) == 0:
    return {"slope": float("nan"), "intercept": float("nan"), "se": float("nan")}
  slope, intercept = np.polyfit(x, y, 1)
  if len(x) > 2:
    resid = y - (slope * x + intercept)
    se = float(np.sqrt(resid @ resid / (len(x) - 2) / np.sum((x - x.mean()) ** 2)))
  else:
    se = float("nan")
  return {"slope": float(slope), "intercept": float(intercept), "se": se}


def slopes(records: Sequence[dict], fit: str, key: str) -> dict:
  """Per-seed and pooled log–log slopes of `key` against n for one fit."""
  ok = [r for r in records if r["fit"] == fit and r["status"] == "ok"]
  per_seed = {}
  for s in sorted({r["seed"] for r in ok}):
    rs = [r for r in ok if r["seed"] == s]
    per_seed[s] = loglog_slope([r["n"] for r in rs], [r[key] for r in rs])["slope"]
  vals = np.array([v for v in per_seed.values() if np.isfinite(v)])
  pooled = loglog_slope([r["n"] for r in ok], [r[key] for r in ok])
  return {"per_seed": per_seed, "mean": float(vals.mean()) if len(vals) else float("nan"),
          "std": float(vals.std(ddof=1)) if len(vals) > 1 else float("nan"),
          "pooled": pooled}


# ----------------------------------------------------------------------------------------
# The experiment.


def _clean(x):
  """JSON-safe: NaN/inf -> None, numpy -> Python."""
  if isinstance(x, dict):
    return {str(k): _clean(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_clean(v) for v in x]
  if isinstance(x, (np.generic, np.ndarray)):
    return _clean(np.asarray(x).tolist())
  if isinstance(x, float) and not np.isfinite(x):
    return None
  return x


def make_truth(config) -> syn.TrueMetric:
  t = config.truth
  return syn.make_true_metric(t.seed, num_channels=t.num_channels,
                              feature_dim=t.feature_dim, hidden=t.hidden, h=tuple(t.h),
                              b=t.b, noise_var=t.noise_var, dtype=jnp.dtype(config.dtype))


class HeldOut(dict):
  """Held-out items: inputs, their true channel distances and D* on all pairs a < b."""
  __getattr__ = dict.__getitem__


def make_heldout(config, truth: syn.TrueMetric) -> HeldOut:
  inputs = syn.sample_items(np.random.default_rng(config.eval.seed), config.eval.num_items,
                            truth)
  iu = np.triu_indices(config.eval.num_items, k=1)  # all pairs a < b
  return HeldOut(inputs=inputs, iu=iu,
                 d_channels=syn.true_channel_distances(truth, inputs),
                 d_star=syn.true_distance(truth, inputs)[iu])


def _model_distance(params: dict, truth: syn.TrueMetric, heldout: HeldOut) -> np.ndarray:
  towers = params.get("towers", truth.towers)
  dt = jax.tree_util.tree_leaves(towers)[0].dtype
  emb = embed(towers, tuple(jnp.asarray(x, dt) for x in heldout.inputs))
  return np.asarray(distance_matrix(params["w"], emb), np.float64)[heldout.iu]


def _truth_params(truth: syn.TrueMetric, dtype) -> dict:
  return {"towers": truth.towers, "w": truth.w, "noise": noise_raw(truth.noise_var, dtype=dtype)}


def run_one(config, truth: syn.TrueMetric, heldout: HeldOut, *, fit: str, n: int,
            seed: int, log: Log) -> dict:
  """One (fit, n, seed): draw data, fit, measure. Returns the run's record."""
  dtype = jnp.dtype(config.dtype)
  data = syn.make_dataset(np.random.default_rng([config.data_seed, seed, n]), truth, n)
  y = jnp.asarray(data.y, dtype)
  inputs = tuple(jnp.asarray(x, dtype) for x in data.inputs)
  p = truth.num_channels
  mc = config.model
  t0 = time.time()
  if fit == "full":
    loss = full_loss_fn(inputs=inputs, y=y, objective="psd_shift")
    init = init_model_params(jax.random.fold_in(jax.random.PRNGKey(1000 + seed), n),
                             truth.specs, hidden=mc.hidden, dtype=dtype, h0=mc.h0, b0=mc.b0,
                             noise_var0=mc.noise_var0)
    params, info = fit_adam(loss, init, name=f"full n={n} seed={seed}",
                            num_steps=config.full.num_steps,
                            learning_rate=config.full.learning_rate, log=log,
                            log_every_seconds=config.log_every_seconds)
  else:
    d_channels = jnp.asarray(syn.true_channel_distances(truth, data.inputs), dtype)
    objective = "plain" if fit == "w_only_plain" else "psd_shift"
    loss = w_only_loss_fn(d_channels=d_channels, y=y, objective=objective)
    if fit == "w_only":
      params, info, init = fit_w_only(
          d_channels, y, starts=[tuple(s) for s in config.w_only.starts],
          noise_var0=mc.noise_var0, max_iters=config.w_only.max_iters, tol=config.w_only.tol)
    elif fit == "w_only_plain":
      init = w_params(mc.h0, mc.b0, mc.noise_var0, p, dtype)
      params, info = fit_adam(loss, init, name=f"w_only_plain n={n} seed={seed}",
                              num_steps=config.plain.num_steps,
                              learning_rate=config.plain.learning_rate, log=log,
                              log_every_seconds=config.log_every_seconds)
    else:
      raise ValueError(f"unknown fit {fit!r}; fits are {FITS}")
  seconds = time.time() - t0
  truth_loss = (full_loss_fn(inputs=inputs, y=y, objective="psd_shift") if fit == "full"
                else w_only_loss_fn(d_channels=d_channels, y=y, objective="psd_shift"))
  nll_true = float(truth_loss(_truth_params(truth, dtype)))
  rec = {"fit": fit, "n": n, "seed": seed, "seconds": seconds,
         "lambda_min_data": data.lambda_min, "nll_true": nll_true, "info": info,
         "untrained": recovery_errors(_model_distance(init, truth, heldout), heldout.d_star)}
  if params is None:
    return dict(rec, status="failed", **{k: float("nan") for k in ERRORS + EXTRA})
  nll_fit = float(truth_loss(params))  # the fit's NLL under the psd_shift objective
  return dict(rec, status="ok", nll_fit=nll_fit, nll_gap_per_item=(nll_fit - nll_true) / n,
              noise_var=float(noise_variance(params["noise"])),
              w={"h": np.asarray(params["w"].h).tolist(), "b": float(params["w"].b)},
              **recovery_errors(_model_distance(params, truth, heldout), heldout.d_star))


def _runs_to_do(config) -> list:
  todo = []
  for fit in config.fits:
    ns = config.plain.ns if fit == "w_only_plain" else config.ns
    todo += [(fit, n, s) for n in ns for s in config.seeds]
  return todo


def summary_rows(records: Sequence[dict]) -> list:
  """One row per (fit, n): mean and std over seeds of each error, failures counted."""
  rows = []
  for fit in dict.fromkeys(r["fit"] for r in records):
    for n in sorted({r["n"] for r in records if r["fit"] == fit}):
      rs = [r for r in records if r["fit"] == fit and r["n"] == n]
      ok = [r for r in rs if r["status"] == "ok"]
      row = {"fit": fit, "n": n, "runs": len(rs), "failed": len(rs) - len(ok)}
      for key in ERRORS + EXTRA + ("nll_gap_per_item",):
        v = np.array([r[key] for r in ok], float)
        row[key] = float(v.mean()) if len(v) else float("nan")
        row[key + "_std"] = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
      row["untrained_mean_abs"] = float(np.mean([r["untrained"]["mean_abs"] for r in rs]))
      rows.append(row)
  return rows


def run(config: ml_collections.ConfigDict, workdir, *, log: Log = lambda s: None) -> dict:
  """Runs the theory check and writes theory.json/.csv/.png (+ personal_recovery.*).

  Resumes: each finished (fit, n, seed) leaves runs/<fit>_n<n>_s<seed>.json.

  Returns:
    The theory.json dict.
  """
  if jnp.dtype(config.dtype) == jnp.float64 and not jax.config.jax_enable_x64:
    raise ValueError("config.dtype is float64 but jax_enable_x64 is off; enable it "
                     "(experiments/theory.py does) or set --config.dtype=float32")
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  checkpoint.check_workdir_config(workdir, config)
  t_start = time.time()
  truth = make_truth(config)
  heldout = make_heldout(config, truth)
  reference = constant_reference(heldout.d_star)
  log(f"truth: p={truth.num_channels}, d={truth.feature_dim}, hidden={truth.hidden}, "
      f"w*=({np.asarray(truth.w.h).tolist()}, {float(truth.w.b)}), σ²={truth.noise_var}; "
      f"held-out pairs: {len(heldout.d_star)}, D* in [{heldout.d_star.min():.3f}, "
      f"{heldout.d_star.max():.3f}]")
  records = []
  for fit, n, seed in _runs_to_do(config):
    path = workdir / "runs" / f"{fit}_n{n}_s{seed}.json"
    rec = checkpoint.read_json(path)
    if rec is None:
      rec = _clean(run_one(config, truth, heldout, fit=fit, n=n, seed=seed, log=log))
      checkpoint.write_json(path, rec)
    rec = {k: (float("nan") if v is None and k in ERRORS + EXTRA else v)
           for k, v in rec.items()}
    records.append(rec)
    log(f"[{fit} n={n} seed={seed}] {rec['status']}: sup|D-D*|={rec['sup_abs']:.4f} "
        f"mean|D-D*|={rec['mean_abs']:.4f} max|k/k*-1|={rec['kernel_ratio']:.4f} "
        f"(untrained mean {rec['untrained']['mean_abs']:.4f}) in {rec['seconds']:.1f}s")

  rows = summary_rows(records)
  fits = list(dict.fromkeys(r["fit"] for r in records))
  out = {"truth": {"seed": config.truth.seed, "h": list(config.truth.h), "b": config.truth.b,
                   "noise_var": config.truth.noise_var, "hidden": config.truth.hidden,
                   "num_channels": config.truth.num_channels,
                   "feature_dim": config.truth.feature_dim},
         "protocol": {"ns": list(config.ns), "seeds": list(config.seeds),
                      "heldout_items": config.eval.num_items,
                      "heldout_pairs": int(len(heldout.d_star)),
                      "objective": "psd_shift (plain for w_only_plain)",
                      "ratings": "one draw r ~ N(0, K* + σ²I) per (n, seed), not centred"},
         "constant_reference": reference, "summary": rows,
         "slopes": {f: {k: slopes(records, f, k) for k in ERRORS + EXTRA}
                    for f in fits},
         "runs": records, "versions": package_versions()}
  if config.personal.enabled:
    out["personal"] = run_personal(config, truth, heldout, workdir, log)
  out["seconds"] = time.time() - t_start
  out = _clean(out)
  checkpoint.write_json(workdir / "theory.json", out)
  write_csv(workdir / "theory.csv", records)
  plot_theory(workdir / "theory.png", records, reference)
  log(format_table(rows))
  log(f"wrote {workdir}/theory.json, theory.csv, theory.png")
  return out


# ----------------------------------------------------------------------------------------
# Personalisation against a known answer.


def _theta(w: EnsembleWeights) -> np.ndarray:
  return np.append(np.asarray(w.h, np.float64), float(w.b))  # (h, b): [p + 1]


def run_personal(config, truth: syn.TrueMetric, heldout: HeldOut, workdir: pathlib.Path,
                 log: Log) -> dict:
  """Per-user w*_u; w_u fitted on the user's first n items for n in `personal.ns`.

  Two fits per user and n, both from w̄* (the truth's shared w*) with σ² = the true σ²:
  "gd" — the library's `personalize_users` (the paper's gradient descent, plain Eq. 8);
  "mle" — L-BFGS to convergence on the psd_shift objective (what the theory speaks of).
  """
  pc = config.personal
  dtype = jnp.dtype(config.dtype)
  rng = np.random.default_rng(pc.seed)
  ws = syn.sample_user_weights(rng, truth, num_users=pc.num_users, h_spread=pc.h_spread,
                               b_spread=pc.b_spread)
  n_max = max(pc.ns)
  items, ratings = [], []
  for u in range(pc.num_users):  # one draw over the user's n_max items; prefixes are nested
    data = syn.make_dataset(rng, truth, n_max, w=syn.user_weights(ws, u))
    items.append(data.inputs)
    ratings.append(data.y)
  all_inputs = tuple(jnp.asarray(np.concatenate([x[i] for x in items]), dtype)
                     for i in range(truth.num_channels))
  emb = embed(truth.towers, all_inputs)  # frozen (true) towers, every user item once
  d_star_u = [syn.true_distance(truth, heldout.inputs, w=syn.user_weights(ws, u))[heldout.iu]
              for u in range(pc.num_users)]
  d_base = syn.true_distance(truth, heldout.inputs)[heldout.iu]  # w̄* = w*
  noise_var = jnp.asarray(truth.noise_var, dtype)
  rows = []
  for n in pc.ns:
    idx = jnp.asarray(np.arange(pc.num_users)[:, None] * n_max + np.arange(n)[None, :])
    y = jnp.asarray(np.stack([r[:n] for r in ratings]), dtype)
    users = make_user_data(emb, idx, y, jnp.ones((pc.num_users, n), bool))
    t0 = time.time()
    res = personalize_users(truth.w, users, iterations=pc.iterations,
                            step_size=pc.step_scale / n, noise_var=truth.noise_var)
    losses = np.asarray(res.losses)
    t_gd = time.time() - t0
    for u in range(pc.num_users):
      theta_star = _theta(syn.user_weights(ws, u))
      d_ch = jnp.asarray(syn.true_channel_distances(truth, tuple(x[:n] for x in items[u])),
                         dtype)
      fits = {"gd": EnsembleWeights(h=res.w.h[u], b=res.w.b[u])}
      info = {"iters": 0, "finite": False}
      if pc.lbfgs_iters:  # 0: skip the MLE (quick runs)
        mle, info = fit_lbfgs(w_nll_fixed_noise, {"w": truth.w}, (d_ch, y[u], noise_var),
                              max_iters=pc.lbfgs_iters, tol=1e-7)
        fits["mle"] = mle["w"]
      tail = max(1, pc.iterations // 10)
      row = {"user": u, "n": n,
             "base_w_err": float(np.linalg.norm(_theta(truth.w) - theta_star)),
             **{f"base_{k}": v for k, v in recovery_errors(d_base, d_star_u[u]).items()},
             "gd_loss_drop_last10pct": float(losses[u, -tail] - losses[u, -1]),
             "gd_finite": bool(np.all(np.isfinite(losses[u]))),
             "mle_iters": info["iters"], "mle_finite": info["finite"],
             "w_star": theta_star.tolist()}
      for name in ("gd", "mle"):
        if name not in fits:  # skipped: NaN, same columns
          row.update({f"{name}_w_err": float("nan"), f"{name}_w": [float("nan")] * 3,
                      **{f"{name}_{k}": float("nan") for k in ERRORS + EXTRA}})
          continue
        d_u = syn.true_distance(truth, heldout.inputs, w=fits[name])[heldout.iu]
        row[f"{name}_w_err"] = float(np.linalg.norm(_theta(fits[name]) - theta_star))
        row[f"{name}_w"] = _theta(fits[name]).tolist()
        row.update({f"{name}_{k}": v for k, v in recovery_errors(d_u, d_star_u[u]).items()})
      rows.append(row)
    cur = [r for r in rows if r["n"] == n]
    log(f"[personal n={n}] {pc.num_users} users (GD {t_gd:.1f}s, all {time.time() - t0:.1f}s):"
        f" |w_u-w*_u| GD {np.mean([r['gd_w_err'] for r in cur]):.3f}, MLE "
        f"{np.mean([r['mle_w_err'] for r in cur]):.3f}; mean|D-D*| GD "
        f"{np.mean([r['gd_mean_abs'] for r in cur]):.4f}, MLE "
        f"{np.mean([r['mle_mean_abs'] for r in cur]):.4f}, w̄* "
        f"{np.mean([r['base_mean_abs'] for r in cur]):.4f}")
  write_personal_csv(workdir / "personal_recovery.csv", rows)
  plot_personal(workdir / "personal_recovery.png", rows)
  by_n = []
  for n in pc.ns:
    rs = [r for r in rows if r["n"] == n]
    rec = {"n": n}
    for key in ("w_err", "mean_abs", "sup_abs", "shape_abs"):
      for name in ("gd", "mle", "base"):
        rec[f"{name}_{key}"] = float(np.mean([r[f"{name}_{key}"] for r in rs]))
    for name in ("gd", "mle"):
      rec[f"{name}_share_better_than_base"] = float(np.mean(
          [r[f"{name}_mean_abs"] < r["base_mean_abs"] for r in rs]))
    by_n.append(rec)
  ns_all = [r["n"] for r in rows]
  return {"protocol": {"num_users": pc.num_users, "ns": list(pc.ns),
                       "gd": {"iterations": pc.iterations, "step_size": f"{pc.step_scale}/n"},
                       "mle": {"optimizer": "L-BFGS", "max_iters": pc.lbfgs_iters,
                               "objective": "psd_shift, σ² fixed"},
                       "start": "w̄* (the truth's shared w*)", "noise_var": "true σ²",
                       "h_spread": pc.h_spread, "b_spread": pc.b_spread},
          "by_n": by_n,
          "slopes": {f"{name}_{key}": loglog_slope(ns_all, [r[f"{name}_{key}"] for r in rows])
                     for name in ("gd", "mle") for key in ("w_err", "mean_abs")},
          "users": rows}
