"""NaN/Inf guard: names the quantity, the pytree path and the step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslmetric.model import guards
from sslmetric.model.ensemble import EnsembleWeights


def test_finite_tree_passes_and_ints_are_ignored():
  tree = {"a": jnp.ones(3), "b": (np.arange(4), 2.5), "w": EnsembleWeights(jnp.zeros(2), 0.0)}
  guards.check_finite(tree, name="params", step=3)
  assert bool(jax.jit(guards.all_finite)(tree))


def test_raises_naming_path_counts_and_step():
  grads = {"towers": ({"w_o": np.array([1.0, np.nan, np.nan])}, {"embedding": np.ones(2)}),
           "w": EnsembleWeights(h=np.array([np.inf, 0.0]), b=np.float64(0.0))}
  with pytest.raises(FloatingPointError) as err:
    guards.check_finite(grads, name="grads", step=12)
  msg = str(err.value)
  assert "non-finite grads at step 12" in msg
  assert "['towers'][0]['w_o'] (2 NaN, 0 Inf of 3 entries)" in msg
  assert ".h (0 NaN, 1 Inf of 2 entries)" in msg
  assert "embedding" not in msg
  assert not bool(guards.all_finite(grads))


def test_scalar_without_step():
  with pytest.raises(FloatingPointError, match=r"non-finite nll: <value> \(1 NaN"):
    guards.check_finite(jnp.float32(np.nan), name="nll")
  assert guards.non_finite_report(jnp.array([1.0, -np.inf])) == [("", 0, 1, 2)]
