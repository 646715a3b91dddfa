"""The MovieLens/Yelp experiment (paper's Q1, Fig. 1): every method under one protocol.

Stages (METHOD.md §2–5), for each seed:
  1. item channels from the training period; noisy co-interaction pairs (App. A.1);
  2. SIAMESE: towers + w trained with the contrastive loss (Eq. 2);
  3. SSL: the GP NLL (Eq. 6, sparse App. G by default) on the training items' centred
     average ratings, initialised from SIAMESE, evaluated every `eval_every` steps
     (the curves of Fig. 1);
  4. SPE (METHOD.md §4, assumptions in `sslmetric.model.spe`) and the trivial rankers;
  5. the results contract: results.json, rankings_<name>.csv, curves.csv, curves.png.

Resume: every trained stage checkpoints under `<workdir>/seed<s>/`; a finished method
leaves `<method>.json` there and is not redone. Re-running with the same workdir and
config continues a killed run and reaches the same numbers.
"""

from __future__ import annotations

import functools
import pathlib
import time
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from sslmetric.data import channels as channels_lib
from sslmetric.data import registry
from sslmetric.data import text as text_lib
from sslmetric.eval import baselines, ground_truth as gt_lib, metrics as metrics_lib
from sslmetric.eval import ranking, results as results_lib, split as split_lib
from sslmetric.eval.pairs import sample_noisy_pairs
from sslmetric.experiment import checkpoint, loop, objectives, report
from sslmetric.experiment.sink import MetricSink, Progress
from sslmetric.model import spe
from sslmetric.model.distance import pair_channel_distances
from sslmetric.model.ensemble import EnsembleWeights
from sslmetric.model.gp import init_model_params, noise_raw
from sslmetric.model.sparse_gp import select_inducing
from sslmetric.model.towers import catalogue_inputs, embed, specs_from_catalogue, take_rows

Log = Callable[[str], None]
METHODS = ("ssl", "siamese", "spe", "random", "popularity", "genre_jaccard")


class Prepared(dict):
  """What every seed shares: data, split, truth, catalogue (a dict with attribute access)."""
  __getattr__ = dict.__getitem__


def prepare(config: ml_collections.ConfigDict, log: Log) -> Prepared:
  """Loads the data, splits it, builds ground truth and channels (seed-independent)."""
  pc = config.protocol
  dataset = registry.load_dataset(config.dataset, config.data_dir or None)
  for line in registry.summary_lines(dataset):
    log(line)
  split = split_lib.temporal_split(dataset.interactions, f=pc.test_fraction)
  if pc.eval_on == "validation":
    split = split_lib.validation_split(dataset.interactions, split, f=pc.test_fraction)
  elif pc.eval_on != "test":
    raise ValueError(f"protocol.eval_on must be 'test' or 'validation', got {pc.eval_on!r}")
  truth = gt_lib.ground_truth(split.interactions, split.test_items, window=pc.window,
                              horizon_seconds=pc.horizon_seconds or None)
  log(f"split ({pc.eval_on}): T={split.t_split}, {split.report['n_train_items']} train "
      f"items, {len(split.test_items)} cold items, {len(truth)} with non-empty G(x) "
      f"({len(truth.dropped)} dropped: empty G)")

  text_emb = None
  if "title" in config.channels:
    ok, why = text_lib.text_channel_available()
    if ok:
      t0 = time.time()
      text_emb = text_lib.cached_text_embeddings(list(dataset.items.titles))
      log(f"title embeddings: {text_emb.shape} in {time.time() - t0:.1f}s (cached on disk)")
    else:
      log(f"title channel OFF: {why}")
  catalogue, chan_report = channels_lib.build_catalogue(
      dataset, train_interactions=split.train, text_embeddings=text_emb,
      include=tuple(config.channels),
      test_avg_rating_uses_future=pc.test_avg_rating_uses_future,
      all_interactions=split.interactions)
  log(f"channels: {', '.join(catalogue.names)}"
      + (f" (skipped: {chan_report['skipped']})" if chan_report["skipped"] else ""))
  y = channels_lib.gp_targets(dataset, split.train, split.train_items)
  return Prepared(dataset=dataset, split=split, truth=truth, catalogue=catalogue,
                  channel_report=chan_report, y=y,
                  inputs=tuple(jnp.asarray(x) for x in catalogue_inputs(catalogue)),
                  train_rows=split.train_items)


def protocol_dict(config, prep: Prepared) -> dict:
  pc = config.protocol
  return {"split": "temporal cold-start", "test_fraction": pc.test_fraction,
          "t_split": int(prep.split.t_split), "eval_on": pc.eval_on,
          "ground_truth_window": pc.window,
          "ground_truth_horizon_seconds": pc.horizon_seconds or None, "k": pc.k,
          "candidates": "whole catalogue except the query", "ties": "item index",
          "test_avg_rating_uses_future": pc.test_avg_rating_uses_future,
          "n_test_items_before_truth_filter": int(len(prep.split.test_items)),
          "n_test_items": int(len(prep.truth)), "channels": list(prep.catalogue.names),
          "channel_report": prep.channel_report}


def evaluate_scores(score_fn, prep: Prepared, k: int) -> tuple:
  """(mean metrics, top-k [q, k]) of a score function on the queries with truth."""
  top = ranking.topk(score_fn, prep.truth.items, num_items=prep.catalogue.num_items, k=k)
  return metrics_lib.mean_metrics(metrics_lib.evaluate_rankings(top, prep.truth)), top


def scaled_init_weights(params: dict, prep: Prepared, key: jax.Array,
                        num_pairs: int = 4096) -> EnsembleWeights:
  """w0 with h_i = 1 / (p · median D_i) and b = -1 over random training-item pairs.

  With h = 1, a 50-wide tanh tower gives D_i of order 10 per channel, so
  sigmoid(Σ h_i D_i + b) starts saturated at 1 for nearly every pair and the
  contrastive loss has almost no gradient (its first value is 0.5 = all pairs at D ≈ 1).
  Scaling each channel by its median distance starts the logit at O(1) instead.
  Uses training items only.
  """
  rows = jnp.asarray(prep.train_rows)
  ka, kb = jax.random.split(key)
  a = rows[jax.random.randint(ka, (num_pairs,), 0, len(rows))]
  b = rows[jax.random.randint(kb, (num_pairs,), 0, len(rows))]
  emb_a = embed(params["towers"], take_rows(prep.inputs, a))
  emb_b = embed(params["towers"], take_rows(prep.inputs, b))
  med = jnp.median(pair_channel_distances(emb_a, emb_b), axis=0)  # [p]
  p = med.shape[0]
  h = 1.0 / (p * jnp.maximum(med, 1e-6))
  return EnsembleWeights(h=h.astype(params["w"].h.dtype),
                         b=jnp.asarray(-1.0, params["w"].b.dtype))


def _done_path(seed_dir: pathlib.Path, method: str) -> pathlib.Path:
  return seed_dir / f"{method}.json"


def _save_method(seed_dir, method, metrics, top, seconds, history=()):
  np.save(seed_dir / f"{method}_topk.npy", top)
  checkpoint.write_json(_done_path(seed_dir, method),
                        {"metrics": metrics, "train_seconds": seconds,
                         "history": list(history)})


def _load_method(seed_dir, method):
  rec = checkpoint.read_json(_done_path(seed_dir, method))
  if rec is None:
    return None
  return rec, np.load(seed_dir / f"{method}_topk.npy")


@functools.lru_cache(maxsize=None)
def _optimizer(lr: float):  # cached: the same object lets seeds share a compiled step
  return optax.chain(optax.clip_by_global_norm(10.0), optax.adam(lr))


def run_seed(config, prep: Prepared, seed: int, workdir: pathlib.Path, log: Log,
             sink: MetricSink) -> dict:
  """All methods for one seed.

  Returns:
    {method: (saved record, top-k [q, k])} plus "ssl_params", the fitted SSL model.
  """
  seed_dir = workdir / f"seed{seed}"
  seed_dir.mkdir(parents=True, exist_ok=True)
  k = config.protocol.k
  out = {}

  def progress_fn(stage, total):
    p = Progress(f"[seed {seed}] {stage}", total, log, every_seconds=config.log_every_seconds)

    def cb(step, loss):
      p.update(step, f"loss={loss:.4f}")
      if step % 50 == 0 or step == total:
        sink.write(seed=seed, stage=stage, step=step, loss=loss)
    return cb

  def eval_fn(method):
    def ev(step, params):
      m, _ = evaluate_scores(objectives.metric_score_fn(params, prep.inputs), prep, k)
      sink.write(seed=seed, method=method, step=step, **m)
      return m
    return ev

  def fit_metric(method, *, objective, init, learning_rate, num_steps, key, eval_every,
                 t0):
    """Trains (or resumes) a distance-metric model; evaluates and records it once."""
    loss_fn, data = objective
    params, hist, _ = loop.train(
        name=method.upper(), loss_fn=loss_fn, data=data, params=init,
        optimizer=_optimizer(learning_rate), num_steps=num_steps, key=key,
        ckpt_path=seed_dir / f"{method}.ckpt", ckpt_every=config.checkpoint_every,
        evaluate=eval_fn(method), eval_every=eval_every,
        progress=progress_fn(method, num_steps))
    if _load_method(seed_dir, method) is None:
      m, top = evaluate_scores(objectives.metric_score_fn(params, prep.inputs), prep, k)
      _save_method(seed_dir, method, m, top, time.time() - t0, hist)
    return params

  # Trivial rankers.
  split = prep.split
  trivial = {
      "random": baselines.random_scores(seed=seed),
      "popularity": baselines.popularity_scores(split.train),
      "genre_jaccard": baselines.genre_jaccard_scores(prep.dataset.items.categories),
  }
  for name, fn in trivial.items():
    done = _load_method(seed_dir, name)
    if done is None:
      m, top = evaluate_scores(fn, prep, k)
      _save_method(seed_dir, name, m, top, 0.0)
      done = _load_method(seed_dir, name)
    out[name] = done

  pairs = sample_noisy_pairs(split.train, train_items=split.train_items,
                             kappa=config.pairs.kappa, num_pos=config.pairs.num_pos,
                             num_neg=config.pairs.num_neg, seed=seed)
  key = jax.random.PRNGKey(seed)
  dtype = jnp.dtype(config.dtype)
  specs = specs_from_catalogue(prep.catalogue)

  # SIAMESE.
  sc = config.siamese
  t0 = time.time()
  init = init_model_params(jax.random.fold_in(key, 1), specs, hidden=config.model.hidden,
                           id_width=config.model.id_width, dtype=dtype)
  if config.model.scale_init:
    init["w"] = scaled_init_weights(init, prep, jax.random.fold_in(key, 7))
  siamese_params = fit_metric(
      "siamese", objective=objectives.siamese_loss_fn(
          inputs=prep.inputs, pairs=pairs, batch_size=sc.batch_size, margin=sc.margin),
      init=init, learning_rate=sc.learning_rate, num_steps=sc.num_steps,
      key=jax.random.fold_in(key, 2), eval_every=sc.eval_every, t0=t0)
  out["siamese"] = _load_method(seed_dir, "siamese")

  # SSL: GP marginal likelihood on centred average ratings, from SIAMESE. The loop
  # resumes from its checkpoint (instantly when finished), so the params are returned
  # even when the method's result already exists.
  lc = config.ssl
  t0 = time.time()
  init = dict(siamese_params)
  init["noise"] = noise_raw(lc.noise_var0 * float(np.var(prep.y)), dtype=dtype)
  n = len(prep.train_rows)
  inducing = None
  if lc.sparse:
    inducing = select_inducing(jax.random.fold_in(key, 3), n, min(lc.num_inducing, n))
  train_inputs = tuple(x[prep.train_rows] for x in prep.inputs)
  ssl_params = fit_metric(
      "ssl", objective=objectives.ssl_loss_fn(
          train_inputs=train_inputs, y=prep.y.astype(dtype), inducing_idx=inducing,
          titsias=lc.titsias),
      init=init, learning_rate=lc.learning_rate, num_steps=lc.num_steps,
      key=jax.random.fold_in(key, 4), eval_every=lc.eval_every, t0=t0)
  out["ssl"] = _load_method(seed_dir, "ssl")
  out["ssl_params"] = ssl_params

  # SPE.
  pc = config.spe
  done = _load_method(seed_dir, "spe")
  if done is None:
    t0 = time.time()
    counts = baselines.popularity_counts(split.train)
    avg = (prep.catalogue["avg_rating"].values[:, 0] if "avg_rating" in prep.catalogue.names
           else np.zeros(prep.catalogue.num_items, np.float32))
    content = jnp.asarray(spe.content_matrix(prep.catalogue), dtype)
    beta = jnp.asarray(spe.behaviour_stats(counts=counts, avg_rating=avg), dtype)
    warm = jnp.asarray(counts > 0)
    init = spe.init_spe(jax.random.fold_in(key, 5), content_dim=content.shape[1],
                        num_items=prep.catalogue.num_items, embed_dim=pc.embed_dim,
                        dtype=dtype)
    loss_fn, data = objectives.spe_loss_fn(
        pairs=pairs, batch_size=pc.batch_size, content=content, beta=beta, warm=warm)
    params, _, _ = loop.train(
        name="SPE", loss_fn=loss_fn, data=data,
        params=init, optimizer=_optimizer(pc.learning_rate), num_steps=pc.num_steps,
        key=jax.random.fold_in(key, 6), ckpt_path=seed_dir / "spe.ckpt",
        ckpt_every=config.checkpoint_every,
        progress=progress_fn("spe", pc.num_steps))
    m, top = evaluate_scores(spe.spe_score_fn(params, content=content, beta=beta,
                                              warm=warm), prep, k)
    _save_method(seed_dir, "spe", m, top, time.time() - t0)
  out["spe"] = _load_method(seed_dir, "spe")
  return out


def run(config: ml_collections.ConfigDict, workdir, *, log: Log = lambda s: None) -> dict:
  """Runs every method for every seed and writes the results contract under `workdir`.

  Returns:
    The results.json dict.
  """
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  checkpoint.check_workdir_config(workdir, config)
  sink = MetricSink(workdir / "metrics.jsonl")
  prep = prepare(config, log)
  per_seed = {}
  for seed in config.seeds:
    t0 = time.time()
    per_seed[seed] = run_seed(config, prep, seed, workdir, log, sink)
    log(f"[seed {seed}] done in {time.time() - t0:.0f}s")

  seeds = list(config.seeds)
  methods = {}
  for name in METHODS:
    recs = [per_seed[s][name][0] for s in seeds]
    methods[name] = results_lib.MethodResult(
        per_seed=tuple(r["metrics"] for r in recs), n_test_items=len(prep.truth),
        train_seconds=tuple(r["train_seconds"] for r in recs))
    results_lib.write_rankings_csv(workdir / f"rankings_{name}.csv",
                                   per_seed[seeds[0]][name][1], test_items=prep.truth.items,
                                   item_ids=prep.catalogue.item_ids)
  out = results_lib.write_results_json(
      workdir / "results.json", dataset=config.dataset, protocol=protocol_dict(config, prep),
      seeds=seeds, methods=methods)
  curves = report.curves_rows(
      {s: {m: per_seed[s][m][0] for m in METHODS} for s in seeds})
  report.write_curves_csv(workdir / "curves.csv", curves)
  report.plot_curves(workdir / "curves.png", curves, k=config.protocol.k,
                     title=f"{config.dataset}: SSL over GP iterations vs references")
  log("\n" + results_lib.format_table(out["methods"], k=config.protocol.k))
  log(f"wrote {workdir}/results.json, rankings_*.csv, curves.csv, curves.png")
  return out
