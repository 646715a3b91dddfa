"""Training objectives and score functions of the learned metrics (SIAMESE, SSL, SPE).

Each `*_loss_fn` returns `(loss, data)` for :func:`sslmetric.experiment.loop.train`:
`loss(params, key, data)` depends only on static settings (batch size, margin, …) and is
the same Python object for equal settings, so one compiled training step serves every
seed; `data` is the seed's device arrays; `key` draws the step's mini-batch.

Ranking by a learned metric uses the *logit* of the ensemble distance,
s(a, b) = Σ_i h_i D_i(a, b) + b, not D = sigmoid(s): sigmoid is increasing, so the order
is the same, but in float32 it saturates to exactly 1 for far items and would turn real
differences into ties.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sslmetric.eval.pairs import NoisyPairs
from sslmetric.model import spe
from sslmetric.model.distance import channel_distances, pair_distance
from sslmetric.model.ensemble import ensemble_logit
from sslmetric.model.gp import model_nll
from sslmetric.model.losses import contrastive_loss
from sslmetric.model.towers import embed, take_rows


def _batch(key: jax.Array, pairs: tuple, batch_size: int) -> tuple:
  """A uniform mini-batch (with replacement) of the pairs (a, b, y)."""
  idx = jax.random.randint(key, (batch_size,), 0, pairs[0].shape[0])
  return tuple(p[idx] for p in pairs)


def device_pairs(pairs: NoisyPairs) -> tuple:
  return (jnp.asarray(pairs.a), jnp.asarray(pairs.b), jnp.asarray(pairs.y))


@functools.lru_cache(maxsize=None)
def _siamese_loss(batch_size: int, margin: float):
  def loss(params, key, data):
    inputs, pairs = data
    a, b, y = _batch(key, pairs, batch_size)
    emb_a = embed(params["towers"], take_rows(inputs, a))  # F_i(x_a): [B, w_i]
    emb_b = embed(params["towers"], take_rows(inputs, b))
    d = pair_distance(params["w"], emb_a, emb_b)  # D(a, b) = σ(Σ h_i D_i + b)
    return contrastive_loss(d=d, y=y, margin=margin)
  return loss


def siamese_loss_fn(*, inputs: Sequence, pairs: NoisyPairs, batch_size: int,
                    margin: float):
  """Contrastive loss (Eq. 2) of the ensemble distance on mini-batches of noisy pairs."""
  return (_siamese_loss(int(batch_size), float(margin)),
          (tuple(inputs), device_pairs(pairs)))


@functools.lru_cache(maxsize=None)
def _ssl_loss(titsias: bool, shift_indefinite: bool):
  def loss(params, key, data):
    del key  # full-batch objective
    train_inputs, y, idx = data
    return model_nll(params, train_inputs, y, inducing_idx=idx, titsias=titsias,
                     shift_indefinite=shift_indefinite)
  return loss


def ssl_loss_fn(*, train_inputs: Sequence, y: np.ndarray, inducing_idx=None,
                titsias: bool = False, shift_indefinite: bool = True):
  """GP negative log marginal likelihood (Eq. 6; sparse App. G when `inducing_idx`).

  The Eq. 5/7 kernel is not PSD in general (sslmetric/model/distance.py), so the exact
  path shifts K by max(0, -λ_min(K)) by default (one eigvalsh per step); without it the
  first step from a SIAMESE start was NaN on ML-100K. The sparse path always shifts K_mm.
  """
  idx = None if inducing_idx is None else jnp.asarray(inducing_idx)
  return (_ssl_loss(bool(titsias), bool(shift_indefinite)),
          (tuple(train_inputs), jnp.asarray(y), idx))


def metric_score_fn(params: dict, inputs: Sequence):
  """score(q, c) = -(Σ_i h_i D_i(q, c) + b), for `sslmetric.eval.ranking.topk`."""
  return embedding_score_fn(embed(params["towers"], inputs), params["w"])


@jax.jit
def _metric_scores(emb: tuple, w, query_idx: jax.Array, cand_idx: jax.Array) -> jax.Array:
  d = channel_distances(take_rows(emb, query_idx), take_rows(emb, cand_idx))  # [q, c, p]
  return -ensemble_logit(w, d)


def embedding_score_fn(emb: tuple, w):
  """The same from precomputed embeddings (tuple of [I, w_i]) and any w (e.g. a user's).

  One compiled function serves every w and embedding table of the same shapes.
  """
  return functools.partial(_metric_scores, emb, w)


@functools.lru_cache(maxsize=None)
def _spe_loss(batch_size: int):
  def loss(params, key, data):
    pairs, content, beta, warm = data
    a, b, y = _batch(key, pairs, batch_size)
    return spe.spe_loss(params, a=a, b=b, y=y, content=content, beta=beta, warm=warm)
  return loss


def spe_loss_fn(*, pairs: NoisyPairs, batch_size: int, content, beta, warm):
  """SPE's negative-sampling loss (sslmetric.model.spe) on mini-batches of pairs."""
  return _spe_loss(int(batch_size)), (device_pairs(pairs), content, beta, warm)
