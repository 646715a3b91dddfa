"""Tests for sslmetric.personalize.inner: κ_u(w) as a lax.scan, and per-user fitting."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslmetric.model.ensemble import EnsembleWeights
from sslmetric.personalize.testing import random_users
from sslmetric.personalize import inner
from sslmetric.personalize import objective as obj

P = 3
NOISE = 0.5


_users = functools.partial(random_users, num_users=3, n_pad=10, p=P)


def _one(users, i):
  return jax.tree.map(lambda a: a[i], users)


@pytest.mark.parametrize("objective", obj.OBJECTIVES)
def test_inner_loop_is_t_descent_steps(objective):
  users, w = _users(0)
  user = _one(users, 0)
  steps, omega = 4, 0.05
  got = jax.jit(lambda w: inner.inner_loop(w, user, steps=steps, step_size=omega,
                                           noise_var=NOISE, objective=objective))(w)
  # Reference: a Python loop of w ← w − ω ∇ℓ_u(w) with plain-autodiff gradients.
  grad = jax.jit(jax.grad(lambda w: obj.user_nll_autodiff(w, user, noise_var=NOISE)))
  want = w
  for _ in range(steps):
    want = jax.tree.map(lambda a, g: a - omega * g, want, grad(want))
  chex.assert_trees_all_close(got, want, rtol=1e-11, atol=1e-12)


def test_inner_loop_zero_steps_is_identity():
  users, w = _users(1)
  got = inner.inner_loop(w, _one(users, 0), steps=0, step_size=0.1, noise_var=NOISE)
  chex.assert_trees_all_close(got, w)


def test_personalize_descends_and_traces_losses():
  users, w = _users(2)
  user = _one(users, 1)
  res = inner.personalize(w, user, iterations=60, step_size=0.05, noise_var=NOISE)
  chex.assert_shape(res.losses, (60,))
  # losses[k] = ℓ_u(w_k): the first is ℓ_u at the meta weights ...
  np.testing.assert_allclose(res.losses[0], obj.user_nll(w, user, noise_var=NOISE),
                             rtol=1e-12)
  # ... and a small step size decreases it monotonically.
  assert np.all(np.diff(np.asarray(res.losses)) < 0)
  final = obj.user_nll(res.w, user, noise_var=NOISE)
  assert final < res.losses[-1]
  # Same as the inner loop run for as long.
  chex.assert_trees_all_close(
      res.w, inner.inner_loop(w, user, steps=60, step_size=0.05, noise_var=NOISE),
      rtol=1e-12)


def test_personalize_users_equals_per_user_loop():
  users, w = _users(3, num_users=3)
  kw = dict(iterations=20, step_size=0.05, noise_var=NOISE)
  batched = inner.personalize_users(w, users, **kw)
  for i in range(3):
    one = inner.personalize(w, _one(users, i), **kw)
    chex.assert_trees_all_close(_one(batched, i), one, rtol=1e-11, atol=1e-12)


def test_personalize_blocks_gradient_to_meta_weights():
  users, w = _users(4)
  user = _one(users, 0)
  g = jax.grad(lambda w: obj.user_nll(
      inner.personalize(w, user, iterations=3, step_size=0.05, noise_var=NOISE).w,
      user, noise_var=NOISE))(w)
  chex.assert_trees_all_close(g, jax.tree.map(jnp.zeros_like, w))
