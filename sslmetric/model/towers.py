"""Per-channel towers F_i: item meta data -> an embedding (METHOD.md §1).

Plain functions over a params pytree (no Flax modules), so that `vmap`, `grad` and
meta-gradients see ordinary nested containers.

Channel order is the contract. Everything per channel is a *tuple* in one fixed order,
the order of the `ChannelSpec`s (= the order of `Catalogue.channels`):

    specs[i]  <->  tower_params[i]  <->  inputs[i]  <->  embeddings[i]  <->  w.h[i]

Tuples (not dicts) because JAX flattens dicts in sorted-key order, which would silently
re-order channels against w.h.

Towers (weights not shared across channels), h = `hidden` (50 by default):

* MULTI_HOT / NUMERIC / TEXT: an MLP on the flattened channel values v,
    F(v) = tanh(W_t · sigmoid(W_s · relu(W_o · v + b_o) + b_s) + b_t),
  widths 2h, h, h; output in (-1, 1)^h.
* ITEM_ID: a plain embedding table E [num_items, id_width]; F(j) = E[j].
  An index outside [0, num_items) yields a NaN row (so it cannot pass unnoticed).

Initialisation: weights LeCun-normal (Var = 1 / fan_in, truncated), biases 0; the ID
table N(0, 1 / id_width), so E‖E[a] - E[b]‖² = 2 like a unit-variance feature.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from sslmetric.data.types import Catalogue, ChannelKind

TowerParams = dict  # one channel: {"w_o","b_o","w_s","b_s","w_t","b_t"} or {"embedding"}


class ChannelSpec(NamedTuple):
  """What a tower needs to know about a channel.

  Attributes:
    name: channel name (only for messages and bookkeeping).
    kind: a `ChannelKind`.
    dim: flattened input width (MULTI_HOT/NUMERIC/TEXT), or the number of rows of the
      embedding table (ITEM_ID).
  """
  name: str
  kind: ChannelKind
  dim: int


def specs_from_catalogue(catalogue: Catalogue) -> tuple:
  """One `ChannelSpec` per channel of `catalogue`, in its order.

  ITEM_ID channels get `dim = catalogue.num_items` (their values are row indices).
  """
  specs = []
  for c in catalogue.channels:
    kind = ChannelKind(c.kind)
    if kind == ChannelKind.ITEM_ID:
      dim = catalogue.num_items
    else:
      dim = int(np.prod(c.values.shape[1:])) if c.values.ndim > 1 else 1
    specs.append(ChannelSpec(c.name, kind, dim))
  return tuple(specs)


def catalogue_inputs(catalogue: Catalogue, rows: Optional[np.ndarray] = None) -> tuple:
  """The tower inputs (a tuple in channel order) for items `rows` (default: all).

  Values are returned as stored (numpy); `embed` casts them to the params' dtype.
  """
  if rows is None:
    return tuple(c.values for c in catalogue.channels)
  return tuple(c.values[rows] for c in catalogue.channels)


def output_widths(specs: Sequence[ChannelSpec], *, hidden: int = 50,
                  id_width: int = 30) -> tuple:
  """Embedding width per channel: `id_width` for ITEM_ID, `hidden` otherwise."""
  return tuple(id_width if ChannelKind(s.kind) == ChannelKind.ITEM_ID else hidden
               for s in specs)


def _dense(key: jax.Array, fan_in: int, fan_out: int, dtype) -> tuple:
  w = jax.nn.initializers.lecun_normal()(key, (fan_in, fan_out), dtype)  # Var = 1/fan_in
  return w, jnp.zeros((fan_out,), dtype)


def init_tower(key: jax.Array, spec: ChannelSpec, *, hidden: int = 50, id_width: int = 30,
               dtype=jnp.float32) -> TowerParams:
  """Parameters of one channel's tower (see the module docstring for the shapes)."""
  kind = ChannelKind(spec.kind)
  if spec.dim < 1:
    raise ValueError(f"channel {spec.name!r}: dim must be >= 1, got {spec.dim}")
  if kind == ChannelKind.ITEM_ID:
    table = jax.random.normal(key, (spec.dim, id_width), dtype) * float(id_width) ** -0.5
    return {"embedding": table}  # E [num_items, id_width]
  k_o, k_s, k_t = jax.random.split(key, 3)
  w_o, b_o = _dense(k_o, spec.dim, 2 * hidden, dtype)  # [d, 2h], [2h]
  w_s, b_s = _dense(k_s, 2 * hidden, hidden, dtype)  # [2h, h], [h]
  w_t, b_t = _dense(k_t, hidden, hidden, dtype)  # [h, h], [h]
  return {"w_o": w_o, "b_o": b_o, "w_s": w_s, "b_s": b_s, "w_t": w_t, "b_t": b_t}


def init_towers(key: jax.Array, specs: Union[Sequence[ChannelSpec], Catalogue], *,
                hidden: int = 50, id_width: int = 30, dtype=jnp.float32) -> tuple:
  """Parameters of all towers: a tuple of per-channel dicts in the order of `specs`.

  Args:
    key: PRNG key; channel i uses `fold_in(key, i)`.
    specs: `ChannelSpec`s (or a `Catalogue`, read with `specs_from_catalogue`).
    hidden: h, the MLP towers' width (layers 2h, h, h).
    id_width: width of the ITEM_ID embedding table.
    dtype: parameter dtype; the towers compute in it.
  """
  if isinstance(specs, Catalogue):
    specs = specs_from_catalogue(specs)
  return tuple(init_tower(jax.random.fold_in(key, i), s, hidden=hidden, id_width=id_width,
                          dtype=dtype) for i, s in enumerate(specs))


def apply_tower(params: TowerParams, x: jax.Array) -> jax.Array:
  """F(x) for a batch of items of one channel.

  Args:
    params: one channel's tower parameters.
    x: [n, ...] channel values (MLP towers; flattened to [n, d]) or int [n] row indices
      (ITEM_ID).

  Returns:
    [n, width] embeddings in the params' dtype.
  """
  if "embedding" in params:
    table = params["embedding"]  # E [I, id_width]
    j = jnp.asarray(x)
    valid = (j >= 0) & (j < table.shape[0])  # jnp would clamp or wrap silently
    rows = table[jnp.where(valid, j, 0)]  # F(j) = E[j]
    return jnp.where(valid[:, None], rows, jnp.nan)  # out of range -> NaN row
  w_o = params["w_o"]
  x = jnp.asarray(x, w_o.dtype)
  x = x.reshape(x.shape[0], -1)  # flatten(v): [n, d]
  z = jax.nn.relu(x @ w_o + params["b_o"])  # relu(W_o v + b_o): [n, 2h]
  z = jax.nn.sigmoid(z @ params["w_s"] + params["b_s"])  # sigmoid(W_s z + b_s): [n, h]
  return jnp.tanh(z @ params["w_t"] + params["b_t"])  # tanh(W_t z + b_t): [n, h]


def embed(tower_params: Sequence[TowerParams], inputs: Sequence[jax.Array]) -> tuple:
  """Embeddings of a batch of items in every channel.

  Args:
    tower_params: tuple of per-channel tower params (from `init_towers`).
    inputs: tuple, same order: channel values for the same n items (ITEM_ID: int [n]).

  Returns:
    Tuple of [n, width_i] arrays, F_i(x) for each channel i.
  """
  if len(tower_params) != len(inputs):
    raise ValueError(f"{len(tower_params)} towers but {len(inputs)} input channels; "
                     "inputs must be a tuple in the towers' channel order")
  return tuple(apply_tower(p, x) for p, x in zip(tower_params, inputs))


def take_rows(tree, idx: jax.Array):
  """Rows `idx` of every array in a pytree (e.g. the inducing items' embeddings)."""
  return jax.tree_util.tree_map(lambda a: jnp.take(a, idx, axis=0), tree)
