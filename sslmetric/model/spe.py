"""SPE baseline: semi-parametric item embeddings (Hu, Du, Hu, Li, IJCAI 2019), METHOD.md §4.

What the SPE paper fixes: an item's embedding mixes a non-parametric ID embedding z
(behaviour) with a parametric content embedding e = g(content),

    v(x) = δ(x) · z(x) + (1 - δ(x)) · e(x),     δ(x) = sigmoid(u · β(x)),

so items with little behaviour lean on content. SPE's code is not public; everything
below marked ASSUMPTION is ours (also listed in the README):

* ASSUMPTION g: one tower of METHOD.md §1 (widths 2h, h, h) over the concatenation of
  the item's content channels (every channel except the item id and the average rating).
* ASSUMPTION β(x) = (log(1 + #training interactions of x), average training rating of x
  (standardised; 0 for cold items), 1), the behaviour statistics; u ∈ R³ is learned.
* ASSUMPTION z: an embedding table of width h; a cold-start item (no training
  interaction) has z = 0 (and β from zero interactions), so v = (1 - δ) e.
* ASSUMPTION loss: negative-sampling logistic loss on the same noisy co-interaction pairs
  as SIAMESE: -log σ(s·cos(v_a, v_b) + c) for similar pairs, -log σ(-(s·cos + c)) for
  dissimilar ones, with a learned scale s = softplus(·) and offset c.
* ASSUMPTION ranking: by cosine similarity of v (higher = more similar).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sslmetric.data.types import Catalogue, ChannelKind
from sslmetric.model.towers import ChannelSpec, apply_tower, init_tower

#: Channels SPE treats as behaviour (in β or z), not content.
BEHAVIOUR_CHANNELS = ("avg_rating",)


def content_matrix(catalogue: Catalogue) -> np.ndarray:
  """[I, d] float32: the content channels (not item id, not average rating) side by side."""
  cols = [c.values.reshape(len(c.values), -1).astype(np.float32)
          for c in catalogue.channels
          if ChannelKind(c.kind) != ChannelKind.ITEM_ID and c.name not in BEHAVIOUR_CHANNELS]
  if not cols:
    raise ValueError(f"SPE needs at least one content channel; catalogue has "
                     f"{catalogue.names}")
  return np.concatenate(cols, axis=1)


def behaviour_stats(*, counts: np.ndarray, avg_rating: np.ndarray) -> np.ndarray:
  """β [I, 3] = (log(1 + #train interactions), standardised average rating, 1)."""
  counts = np.asarray(counts, np.float32)
  avg = np.where(counts > 0, np.asarray(avg_rating, np.float32), 0.0)
  return np.stack([np.log1p(counts), avg, np.ones_like(counts)], axis=1)


def init_spe(key: jax.Array, *, content_dim: int, num_items: int, embed_dim: int = 50,
             dtype=jnp.float32) -> dict:
  k_g, k_z = jax.random.split(key)
  g = init_tower(k_g, ChannelSpec("content", ChannelKind.TEXT, content_dim),
                 hidden=embed_dim, dtype=dtype)
  z = jax.random.normal(k_z, (num_items, embed_dim), dtype) / np.sqrt(embed_dim)
  return {"g": g, "z": z, "u": jnp.zeros((3,), dtype),
          "scale": jnp.asarray(2.0, dtype), "offset": jnp.asarray(0.0, dtype)}


def item_vectors(params: dict, *, content: jax.Array, beta: jax.Array,
                 warm: jax.Array) -> jax.Array:
  """v = δ z + (1 - δ) e for a batch of items: content [n, d], β [n, 3], warm bool [n]."""
  e = apply_tower(params["g"], content)  # e = g(content): [n, h]
  delta = jax.nn.sigmoid(beta @ params["u"])[:, None]  # δ = σ(u·β): [n, 1]
  z = jnp.where(warm[:, None], params["z_rows"], 0.0)  # cold items: z = 0
  return delta * z + (1.0 - delta) * e


def _unit(v: jax.Array) -> jax.Array:
  return v / jnp.sqrt(jnp.sum(v * v, axis=-1, keepdims=True) + 1e-12)


def vectors_for(params: dict, rows: jax.Array, *, content: jax.Array, beta: jax.Array,
                warm: jax.Array) -> jax.Array:
  """Unit-normalised v for item indices `rows` (all inputs are full [I, ...] tables)."""
  p = dict(params, z_rows=params["z"][rows])
  return _unit(item_vectors(p, content=content[rows], beta=beta[rows], warm=warm[rows]))


def spe_loss(params: dict, *, a: jax.Array, b: jax.Array, y: jax.Array,
             content: jax.Array, beta: jax.Array, warm: jax.Array) -> jax.Array:
  """Mean negative-sampling logistic loss over pairs (a, b, y), y = 0 similar / 1 not."""
  va = vectors_for(params, a, content=content, beta=beta, warm=warm)
  vb = vectors_for(params, b, content=content, beta=beta, warm=warm)
  logit = jax.nn.softplus(params["scale"]) * jnp.sum(va * vb, -1) + params["offset"]
  sign = 1.0 - 2.0 * jnp.asarray(y, logit.dtype)  # +1 similar, -1 dissimilar
  return -jnp.mean(jax.nn.log_sigmoid(sign * logit))


def spe_score_fn(params: dict, *, content: jax.Array, beta: jax.Array,
                 warm: jax.Array):
  """Score function for `sslmetric.eval.ranking.topk`: cosine of v (higher = better)."""
  rows = jnp.arange(content.shape[0])
  v = vectors_for(params, rows, content=content, beta=beta, warm=warm)  # [I, h]

  @jax.jit
  def score(query_idx: jax.Array, cand_idx: jax.Array) -> jax.Array:
    return v[query_idx] @ v[cand_idx].T

  return score
