"""Towers: shapes, the MLP against a numpy reference, ID lookup, catalogue plumbing."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslmetric.data.types import Catalogue, Channel, ChannelKind
from sslmetric.model import towers

# Jitted (specs static): one compile per configuration instead of one per eager op.
init_towers = jax.jit(towers.init_towers, static_argnums=1,
                      static_argnames=("hidden", "id_width", "dtype"))
embed = jax.jit(towers.embed)

SPECS = (towers.ChannelSpec("genre", ChannelKind.MULTI_HOT, 19),
         towers.ChannelSpec("year", ChannelKind.NUMERIC, 1),
         towers.ChannelSpec("title", ChannelKind.TEXT, 8),
         towers.ChannelSpec("id", ChannelKind.ITEM_ID, 12))


def _inputs(rng, n):
  return (rng.integers(0, 2, (n, 19)).astype(np.float32),
          rng.normal(size=(n, 1)).astype(np.float32),
          rng.normal(size=(n, 8)).astype(np.float32),
          rng.integers(0, 12, n).astype(np.int32))


def _np_mlp(p, x):
  """F(v) = tanh(W_t sigmoid(W_s relu(W_o v + b_o) + b_s) + b_t), in numpy."""
  p = {k: np.asarray(v, np.float64) for k, v in p.items()}
  sig = lambda z: 1.0 / (1.0 + np.exp(-z))
  z = np.maximum(x.reshape(len(x), -1) @ p["w_o"] + p["b_o"], 0.0)
  z = sig(z @ p["w_s"] + p["b_s"])
  return np.tanh(z @ p["w_t"] + p["b_t"])


def test_mlp_matches_numpy_and_lies_in_tanh_range():
  rng = np.random.default_rng(1)
  params = init_towers(jax.random.key(1), SPECS, hidden=6, id_width=4,
                              dtype=jnp.float64)
  # Non-zero biases so every term of the formula is exercised.
  params = jax.tree_util.tree_map(lambda a: a + 0.3 * rng.normal(size=a.shape), params)
  x = _inputs(rng, 9)
  emb = embed(params, x)
  for i in range(3):
    np.testing.assert_allclose(emb[i], _np_mlp(params[i], x[i]), rtol=1e-12, atol=1e-12)
    assert np.all(np.abs(np.asarray(emb[i])) < 1.0)
  np.testing.assert_array_equal(emb[3], np.asarray(params[3]["embedding"])[x[3]])


def test_item_id_out_of_range_is_nan_not_clamped():
  params = init_towers(jax.random.key(2), SPECS[3:], dtype=jnp.float64)
  emb = towers.embed(params, (np.array([0, 11, 12, -1]),))[0]
  assert np.all(np.isfinite(emb[:2])) and np.all(np.isnan(emb[2:]))


def test_default_widths_dtype_and_init_scale():
  rng = np.random.default_rng(3)
  params = init_towers(jax.random.key(3), SPECS, dtype=jnp.float32)
  assert len(params) == 4
  chex.assert_shape([params[0]["w_o"], params[0]["w_s"], params[0]["w_t"]],
                    [(19, 100), (100, 50), (50, 50)])
  chex.assert_shape(params[3]["embedding"], (12, 30))
  assert towers.output_widths(SPECS) == (50, 50, 50, 30)
  # float64 inputs, float32 params: the towers compute in the params' dtype.
  x = tuple(a.astype(np.float64) if a.dtype.kind == "f" else a for a in _inputs(rng, 7))
  emb = embed(params, x)
  chex.assert_shape(emb, [(7, 50), (7, 50), (7, 50), (7, 30)])
  assert all(e.dtype == jnp.float32 for e in emb) and all(
      a.dtype == jnp.float32 for a in jax.tree_util.tree_leaves(params))
  # Var(W) = 1/fan_in (LeCun), Var(E) = 1/id_width; sampling error ~2% and ~4%.
  assert abs(float(jnp.std(params[0]["w_s"])) * np.sqrt(100) - 1.0) < 0.1
  assert abs(float(jnp.std(params[3]["embedding"])) * np.sqrt(30) - 1.0) < 0.2


def test_channels_get_distinct_keys_and_init_is_deterministic():
  a = init_towers(jax.random.key(7), SPECS[:2] + SPECS[:2])  # jitted
  b = towers.init_towers(jax.random.key(7), SPECS[:2] + SPECS[:2])  # eager
  chex.assert_trees_all_close(a, b, rtol=1e-6)
  assert not np.allclose(a[0]["w_o"], a[2]["w_o"])


def test_catalogue_specs_and_inputs():
  rng = np.random.default_rng(4)
  n = 6
  cat = Catalogue(item_ids=np.array([str(i) for i in range(n)]), channels=(
      Channel("genre", ChannelKind.MULTI_HOT, rng.integers(0, 2, (n, 3)).astype(np.float32)),
      Channel("id", ChannelKind.ITEM_ID, np.arange(n, dtype=np.int32))))
  specs = towers.specs_from_catalogue(cat)
  assert specs == (towers.ChannelSpec("genre", ChannelKind.MULTI_HOT, 3),
                   towers.ChannelSpec("id", ChannelKind.ITEM_ID, n))
  rows = np.array([4, 1])
  inputs = towers.catalogue_inputs(cat, rows)
  np.testing.assert_array_equal(inputs[0], cat.channels[0].values[rows])
  params = towers.init_towers(jax.random.key(0), cat, dtype=jnp.float64)
  emb = towers.embed(params, inputs)
  np.testing.assert_array_equal(emb[1], np.asarray(params[1]["embedding"])[rows])


def test_errors():
  params = init_towers(jax.random.key(0), SPECS[:2])
  with pytest.raises(ValueError, match="channel order"):
    towers.embed(params, (np.zeros((2, 19)),))
  with pytest.raises(ValueError, match="dim must be"):
    towers.init_tower(jax.random.key(0), towers.ChannelSpec("x", ChannelKind.TEXT, 0))
