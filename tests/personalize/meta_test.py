"""Tests for sslmetric.personalize.meta: Eq. 9; exact, Lemma 1, first-order gradients.

Most tests share one batch shape (4 users × 8 items, 3 inner steps) and the jitted
functions below, so XLA compiles each configuration once for the whole file.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sslmetric.model.ensemble import EnsembleWeights
from sslmetric.personalize.testing import random_users
from sslmetric.personalize import meta
from sslmetric.personalize import objective as obj

P = 3
NOISE = 0.5
STEPS = 3
OMEGA = 0.05
B, N_PAD = 4, 8

GRAD = jax.jit(meta.meta_grad, static_argnames=("mode", "steps", "objective",
                                                "chunk_size"))
USER_GRAD = jax.jit(meta.user_meta_grad, static_argnames=("mode", "steps", "objective"))


_users = functools.partial(random_users, num_users=B, n_pad=N_PAD, p=P)


def _flat(w):
  return np.concatenate([np.ravel(w.h), np.ravel(w.b)])


def _unflat(x):
  return EnsembleWeights(h=jnp.asarray(x[:-1]), b=jnp.asarray(x[-1]))


def _one(users, i):
  return jax.tree.map(lambda a: a[i], users)


def _grad(w, users, mode="exact", **kw):
  kw = dict(dict(steps=STEPS, step_size=OMEGA, noise_var=NOISE), **kw)
  return GRAD(w, users, mode=mode, **kw)


def test_exact_meta_gradient_matches_central_differences_and_jax_grad():
  """meta_grad (hand objectives) = jax.grad(meta_loss) = central differences (f64)."""
  users, w = _users(0)
  # L(w) and jax.grad through the unrolled loop, with the plain-autodiff objective
  # (independent of the hand derivatives).
  value_and_grad = jax.jit(jax.value_and_grad(lambda x: meta.meta_loss(
      _unflat(x), users, steps=STEPS, step_size=OMEGA, noise_var=NOISE,
      objective="autodiff")))
  x0, eps = _flat(w), 1e-5
  value_ref, grad_ref = value_and_grad(x0)
  fd = np.array([(value_and_grad(x0 + eps * e)[0] - value_and_grad(x0 - eps * e)[0])
                 / (2 * eps) for e in np.eye(len(x0))])
  np.testing.assert_allclose(grad_ref, fd, rtol=1e-7, atol=1e-9)
  for objective in ("hand", "hand_jvp"):  # "autodiff" is the reference itself
    value, grad = _grad(w, users, objective=objective)
    np.testing.assert_allclose(value, value_ref, rtol=1e-12)
    np.testing.assert_allclose(_flat(grad), grad_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("chunk_size", [None, 3, B])
def test_batched_equals_python_loop_over_users(chunk_size):
  users, w = _users(2)
  got = _grad(w, users, chunk_size=chunk_size)
  parts = [USER_GRAD(w, _one(users, i), mode="exact", steps=STEPS, step_size=OMEGA,
                     noise_var=NOISE) for i in range(B)]
  want = jax.tree.map(lambda *xs: sum(xs) / B, *parts)
  chex.assert_trees_all_close(got, want, rtol=1e-12, atol=1e-13)


def test_all_padding_users_are_ignored():
  users, w = _users(3)
  empty = jax.tree.map(jnp.zeros_like, _one(users, 0))  # mask all False
  with_empty = jax.tree.map(lambda a, e: a.at[B - 1].set(e), users, empty)
  parts = [USER_GRAD(w, _one(users, i), mode="exact", steps=STEPS, step_size=OMEGA,
                     noise_var=NOISE) for i in range(B - 1)]
  want = jax.tree.map(lambda *xs: sum(xs) / (B - 1), *parts)
  chex.assert_trees_all_close(_grad(w, with_empty), want, rtol=1e-12, atol=1e-13)


def test_lemma1_and_first_order_approach_exact_as_step_size_shrinks():
  """Relative error vs the exact meta-gradient: O(ω) first order, O(ω²) Lemma 1."""
  users, w = _users(4)
  errors = {}
  for omega in (0.01, 0.005):
    exact = _flat(_grad(w, users, step_size=omega)[1])
    for mode in ("lemma1", "first_order"):
      approx = _flat(_grad(w, users, mode=mode, step_size=omega)[1])
      errors[mode, omega] = np.linalg.norm(approx - exact) / np.linalg.norm(exact)
  print("relative error vs exact meta-gradient:",
        {f"{m}@ω={o}": f"{e:.2e}" for (m, o), e in errors.items()})
  for omega in (0.01, 0.005):
    assert errors["lemma1", omega] < errors["first_order", omega] / 5
  # Halving ω: first order's error halves, Lemma 1's drops ~4×.
  assert 1.7 < errors["first_order", 0.01] / errors["first_order", 0.005] < 2.3
  assert 3.4 < errors["lemma1", 0.01] / errors["lemma1", 0.005] < 4.6


def test_lemma1_and_first_order_formulas():
  """lemma1 = mean_u (I − tωH_u + C(t,2)ω²H_u²) ∇ℓ_u(κ_u(w)), H_u at w; first order
  = mean_u ∇ℓ_u(κ_u(w)); checked with autodiff Hessians and a Python descent loop."""
  users, w = _users(5)
  t, omega = STEPS, OMEGA
  hessian = jax.jit(jax.hessian(
      lambda x, u: obj.user_nll_autodiff(_unflat(x), u, noise_var=NOISE)))
  grad = jax.jit(jax.grad(
      lambda x, u: obj.user_nll_autodiff(_unflat(x), u, noise_var=NOISE)))
  want_l1, want_fo = 0, 0
  for i in range(B):
    user = _one(users, i)
    x = _flat(w)
    for _ in range(t):  # κ_u(w): w ← w − ω ∇ℓ_u(w)
      x = x - omega * np.asarray(grad(x, user))
    g, hess = np.asarray(grad(x, user)), np.asarray(hessian(_flat(w), user))
    jac = np.eye(P + 1) - t * omega * hess + t * (t - 1) / 2 * omega**2 * hess @ hess
    want_l1 = want_l1 + jac @ g / B
    want_fo = want_fo + g / B
  np.testing.assert_allclose(_flat(_grad(w, users, mode="lemma1")[1]), want_l1,
                             rtol=1e-9, atol=1e-12)
  np.testing.assert_allclose(_flat(_grad(w, users, mode="first_order")[1]), want_fo,
                             rtol=1e-9, atol=1e-12)


def test_meta_step_does_not_retrace_across_batches():
  opt = optax.sgd(0.01)
  # chex raises if the gradient function is traced a second time.
  step = meta.make_meta_step(opt, grad_fn=chex.assert_max_traces(meta.meta_grad, n=1),
                             steps=STEPS, step_size=OMEGA, noise_var=NOISE)
  _, w = _users(6)
  state = meta.init_meta_state(w, opt)
  for seed in (6, 7, 8):
    state, _ = step(state, _users(seed)[0])
  assert int(state.step) == 3


def test_meta_train_reduces_meta_loss_and_calls_back():
  users, w = _users(12)
  seen = []
  state, history = meta.meta_train(
      w, [users] * 6, optimizer=optax.sgd(0.02), num_steps=10, steps=STEPS,
      step_size=OMEGA, noise_var=NOISE,
      callback=lambda i, m: seen.append((i, m["meta_loss"])))
  assert len(history) == 6  # the iterable ran out first
  assert [i for i, _ in seen] == list(range(6))
  assert all(np.isfinite(m["grad_norm"]) for m in history)
  np.testing.assert_allclose(history[0]["meta_loss"], _grad(w, users)[0], rtol=1e-12)
  assert float(_grad(state.w, users)[0]) < history[0]["meta_loss"]


def test_meta_train_raises_on_nan_with_step():
  users, w = _users(13)
  with pytest.raises(FloatingPointError, match="meta-step 0"):
    meta.meta_train(w, lambda i: users, optimizer=optax.sgd(0.01), num_steps=1,
                    steps=STEPS, step_size=OMEGA, noise_var=-50.0)  # Σ not PD


def test_unknown_mode_raises():
  users, w = _users(14)
  with pytest.raises(ValueError, match="mode must be one of"):
    meta.user_meta_grad(w, _one(users, 0), mode="reptile", steps=1, step_size=0.1,
                        noise_var=NOISE)
