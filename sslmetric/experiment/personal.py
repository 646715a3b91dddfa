"""The personal protocol (paper's Q2, §3.2, Figs. 3 and 5; METHOD.md §3 last bullet).

1. The base SSL metric of the main experiment (seed `personal.seed`; towers + w + σ²)
   is trained, or resumed from `<workdir>/seed<s>/`.
2. Meta-training of w (Eq. 9) over batches of *other* users: users with
   `min_interactions ≤ n < max_interactions`, never the evaluation users, each padded to
   a static length; exact second-order meta-gradients through the unrolled inner loop
   (`sslmetric.personalize.meta`).
3. 20 evaluation users (seeded): each one's first 80% of items (centred ratings) fit
   w_u by `iterations` gradient steps from (a) the meta-learned w ("personalized") and
   (b) the SSL w without meta-learning ("from_ssl_w"); the base SSL metric is (c).
   Each user's query items (last 20%) are ranked over the whole catalogue by each metric
   and scored against G_u (the user's own sequence, same window).
4. personal.json (METHOD.md §5), personal_curves.csv (metrics over personalisation
   iterations, Fig. 5), personal_users.png (per-user bars, Fig. 3), personal_curves.png.
"""

from __future__ import annotations

import functools
import hashlib
import pathlib
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sslmetric.eval import ground_truth as gt_lib, metrics as metrics_lib, ranking
from sslmetric.eval import split as split_lib
from sslmetric.experiment import checkpoint, objectives, personal_report, pipeline
from sslmetric.experiment.sink import MetricSink, Progress
from sslmetric.model.ensemble import EnsembleWeights
from sslmetric.model.gp import noise_variance
from sslmetric.model.towers import embed
from sslmetric.personalize import inner, meta, objective

Log = Callable[[str], None]
VARIANTS = ("base", "personalized", "from_ssl_w")


def fit_users(w: EnsembleWeights, users: objective.UserData, *, iterations: int,
              step_size, noise_var) -> inner.PersonalizeResult:
  """`inner.personalize` vmapped over users, each from its own starting w [B, ...]."""
  fit = functools.partial(inner.personalize, iterations=iterations, step_size=step_size,
                          noise_var=noise_var)
  return jax.vmap(fit, in_axes=(0, 0))(w, users)


def evaluate_user(emb: tuple, w: EnsembleWeights, truth: gt_lib.GroundTruth, *,
                  num_items: int, k: int) -> dict:
  """Mean metrics over the user's query items (those with non-empty G_u)."""
  top = ranking.topk(objectives.embedding_score_fn(emb, w), truth.items, num_items=num_items, k=k)
  return metrics_lib.mean_metrics(metrics_lib.evaluate_rankings(top, truth))


def _meta_pool(interactions, exclude: set, *, min_n: int, max_n: int) -> list:
  """(items, ratings) of every meta-training user: min_n ≤ n < max_n, not excluded."""
  order = split_lib.user_time_order(interactions)
  users = interactions.user[order]
  bounds = np.searchsorted(users, np.arange(interactions.num_users + 1))
  pool = []
  for u in range(interactions.num_users):
    rows = order[bounds[u]:bounds[u + 1]]
    if u in exclude or not min_n <= len(rows) < max_n:
      continue
    pool.append((interactions.item[rows], interactions.rating[rows].astype(np.float64)))
  return pool


def min_kernel_eigenvalue(emb: tuple, w: EnsembleWeights, item_lists) -> float:
  """min over users of λ_min(K_u), K_u = exp(-sigmoid(Σ h_i D_i + b)/2) (numpy, float64)."""
  emb = [np.asarray(e, np.float64) for e in emb]
  h, b = np.asarray(w.h, np.float64), float(w.b)
  lam = np.inf
  for items in item_lists:
    z = np.full((len(items), len(items)), b)
    for h_i, e in zip(h, emb):
      f = e[np.asarray(items)]
      sq = np.sum(f * f, axis=1)
      z += h_i * np.maximum(sq[:, None] + sq[None, :] - 2.0 * f @ f.T, 0.0)  # D_i (Eq. 1)
    k = np.exp(-0.5 / (1.0 + np.exp(-z)))  # K = exp(-sigmoid(z)/2)
    lam = min(lam, float(np.linalg.eigvalsh(k)[0]))
  return lam


def _w_list(w: EnsembleWeights) -> dict:
  return {"h": np.asarray(w.h).tolist(), "b": float(w.b)}


def run(config, workdir, *, log: Log = lambda s: None) -> dict:
  """Runs the personal protocol; writes personal.json and the figures under `workdir`."""
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  pc = config.personal
  k = config.protocol.k
  prep = pipeline.prepare(config, log)
  sink = MetricSink(workdir / "metrics.jsonl")
  seed = pc.seed
  base = pipeline.run_seed(config, prep, seed, workdir, log, sink)["ssl_params"]
  dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
  emb = tuple(jnp.asarray(e, dtype) for e in embed(base["towers"], prep.inputs))
  w_ssl = jax.tree.map(lambda a: jnp.asarray(a, dtype), base["w"])
  num_items = prep.catalogue.num_items
  inter = prep.dataset.interactions

  users = split_lib.sample_personal_users(
      inter, n_users=pc.n_users, min_interactions=pc.min_interactions,
      max_interactions=pc.max_interactions, seed=pc.user_seed)
  truths = [gt_lib.personal_ground_truth(inter, u, window=config.protocol.window)
            for u in users]
  log(f"personal: {len(users)} users (seed {pc.user_seed}), "
      f"{sum(len(t) for t in truths)} query items with non-empty G_u "
      f"({sum(len(t.dropped) for t in truths)} dropped: empty G_u)")

  # σ² of the per-user GPs: a fraction of the variance of user-centred ratings over the
  # meta-training users (the SSL fit's σ² is on the scale of item *average* ratings,
  # far smaller; with it K_u + σ²I was not positive definite for some users).
  pool = _meta_pool(inter, {u.user for u in users}, min_n=pc.min_interactions,
                    max_n=pc.max_interactions)
  centred = np.concatenate([r - r.mean() for _, r in pool])
  noise_data = pc.noise_fraction * float(np.var(centred))
  # The Eq. 5/7 kernel is not PSD in general (the SSL fit even learns a negative h_i),
  # so Σ_u = K_u + σ²I needs σ² > -λ_min(K_u). Measured at w_ssl on the evaluation
  # users and a sample of meta-training users; σ² = max(data value, margin × that).
  probe = [(u.fit_items, u.fit_ratings) for u in users] + pool[:pc.probe_users]
  lam = min_kernel_eigenvalue(emb, w_ssl, [it for it, _ in probe])
  noise_var = jnp.asarray(max(noise_data, pc.psd_margin * max(0.0, -lam)), dtype)
  log(f"personal: {len(pool)} meta-training users; per-user GP noise σ² = "
      f"{float(noise_var):.3f} (data: {noise_data:.3f} = {pc.noise_fraction} × variance "
      f"of centred ratings; min λ(K_u) at w_ssl over {len(probe)} users = {lam:.3f}); "
      f"SSL σ² = {float(noise_variance(base['noise'])):.4f}")

  # Meta-training on other users.
  tag = hashlib.sha1(pc.to_json_best_effort(sort_keys=True).encode()).hexdigest()[:10]
  ckpt = workdir / f"personal_meta_{tag}.json"  # keyed by the personal settings
  saved = checkpoint.read_json(ckpt)
  t0 = time.time()
  if saved is None:
    rng = np.random.default_rng(pc.user_seed + 1)
    progress = Progress("meta-train", pc.meta_steps, log,
                        every_seconds=config.log_every_seconds)

    def batch(step):
      pick = rng.choice(len(pool), size=pc.meta_batch, replace=False)
      items, ratings = zip(*(pool[j] for j in pick))
      idx, y, mask = objective.pad_users(items, ratings, n_pad=pc.max_interactions,
                                         dtype=np.dtype(dtype))
      return objective.make_user_data(emb, jnp.asarray(idx), y, mask)

    def cb(step, m):
      progress.update(step + 1, f"meta_loss={m['meta_loss']:.3f}")
      sink.write(stage="meta", step=step, **m)

    state, hist = meta.meta_train(
        w_ssl, batch, optimizer=optax.adam(pc.meta_learning_rate), num_steps=pc.meta_steps,
        mode=pc.meta_mode, steps=pc.inner_steps, step_size=pc.step_size,
        noise_var=noise_var, callback=cb)
    saved = {"w_meta": _w_list(state.w), "history": hist,
             "seconds": time.time() - t0}
    checkpoint.write_json(ckpt, saved)
  w_meta = EnsembleWeights(h=jnp.asarray(saved["w_meta"]["h"], dtype),
                           b=jnp.asarray(saved["w_meta"]["b"], dtype))

  # Per-user fits, evaluated along the way (Fig. 5).
  n_pad = max(len(u.fit_items) for u in users)
  idx, y, mask = objective.pad_users([u.fit_items for u in users],
                                     [u.fit_ratings for u in users], n_pad=n_pad,
                                     center=False, dtype=np.dtype(dtype))
  data = objective.make_user_data(emb, jnp.asarray(idx), y, mask)
  grid = sorted(set(int(g) for g in pc.curve_iterations) | {0, pc.iterations})
  evals = {v: [[None] * len(grid) for _ in users] for v in ("personalized", "from_ssl_w")}
  final_w = {}
  for variant, w0 in (("personalized", w_meta), ("from_ssl_w", w_ssl)):
    w_batch = jax.tree.map(lambda a: jnp.broadcast_to(a, (len(users),) + a.shape), w0)
    done = 0
    for gi, it in enumerate(grid):
      if it > done:
        res = fit_users(w_batch, data, iterations=it - done, step_size=pc.step_size,
                        noise_var=noise_var)
        w_batch, done = res.w, it
      for ui, t in enumerate(truths):
        w_u = jax.tree.map(lambda a: a[ui], w_batch)
        evals[variant][ui][gi] = evaluate_user(emb, w_u, t, num_items=num_items, k=k)
    final_w[variant] = w_batch
    log(f"personal: {variant} fitted ({pc.iterations} iterations per user)")

  records = []
  for ui, (u, t) in enumerate(zip(users, truths)):
    rec = {"user": u.user_id, "n_interactions": u.n_interactions,
           "n_query_items": int(len(t)),
           "base": evaluate_user(emb, w_ssl, t, num_items=num_items, k=k)}
    for variant in ("personalized", "from_ssl_w"):
      rec[variant] = evals[variant][ui][-1]
      rec[f"w_{variant}"] = _w_list(jax.tree.map(lambda a: a[ui], final_w[variant]))
    records.append(rec)

  keys = metrics_lib.metric_keys(k)
  share = {key: float(np.mean([r["personalized"][key] > r["base"][key] for r in records]))
           for key in keys[:3]}
  share_ssl = {key: float(np.mean([r["from_ssl_w"][key] > r["base"][key]
                                   for r in records])) for key in keys[:3]}
  ties = {key: float(np.mean([r["personalized"][key] == r["base"][key] for r in records]))
          for key in keys[:3]}
  curves = [{"variant": v, "iteration": it,
             **{key: float(np.mean([evals[v][ui][gi][key] for ui in range(len(users))]))
                for key in keys}}
            for v in ("personalized", "from_ssl_w") for gi, it in enumerate(grid)]
  out = {
      "protocol": {"n_users": pc.n_users, "user_seed": pc.user_seed,
                   "min_interactions": pc.min_interactions,
                   "max_interactions": pc.max_interactions, "fit_fraction": 0.8,
                   "window": config.protocol.window, "k": k, "ssl_seed": seed,
                   "iterations": pc.iterations, "step_size": pc.step_size,
                   "inner_steps": pc.inner_steps, "meta_steps": pc.meta_steps,
                   "meta_batch": pc.meta_batch, "meta_mode": pc.meta_mode,
                   "noise_var": float(noise_var),
                   "meta_train_seconds": saved["seconds"]},
      "w_ssl": _w_list(w_ssl), "w_meta": saved["w_meta"],
      "users": records,
      "share_improved": share,
      "share_improved_from_ssl_w": share_ssl,
      "share_tied": ties,
      "mean": {v: {key: float(np.mean([r[v][key] for r in records])) for key in keys}
               for v in VARIANTS},
      "curves": curves,
  }
  checkpoint.write_json(workdir / "personal.json", out)
  personal_report.write(workdir, out, k=k)
  log(personal_report.table(out, k=k))
  return out
