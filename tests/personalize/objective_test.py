"""Tests for sslmetric.personalize.objective: ℓ_u (Eq. 8), hand derivatives, padding."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from sslmetric.data.types import DataError
from sslmetric.model.ensemble import EnsembleWeights
from sslmetric.personalize import objective as obj

P = 3  # channels
NOISE = 0.5


def _problem(seed, n_items=40, n_user=9, dim=4, scale=1 / 3):
  """Random frozen embeddings, one user's items and integer ratings (numpy)."""
  rng = np.random.default_rng(seed)
  emb = [rng.normal(size=(n_items, dim)) * scale for _ in range(P)]
  items = rng.choice(n_items, n_user, replace=False)
  ratings = rng.integers(1, 6, n_user).astype(np.float64)
  w = EnsembleWeights(h=jnp.asarray(rng.uniform(0.1, 0.5, P)),
                      b=jnp.asarray(rng.uniform(-0.5, 0.5)))
  return emb, items, ratings, w


def _user(emb, items, ratings, n_pad, dtype=np.float64):
  item_idx, y, mask = obj.pad_users([items], [ratings], n_pad=n_pad, dtype=dtype)
  emb = [jnp.asarray(e, dtype) for e in emb]
  return jax.tree.map(lambda a: a[0], obj.make_user_data(emb, item_idx, y, mask))


def _numpy_sigma(emb, items, w, noise, jitter=0.0):
  """Σ = K + (σ² + jitter) I from the model equations, in numpy (independent code)."""
  d = np.stack([((e[items][:, None] - e[items][None]) ** 2).sum(-1) for e in emb])
  z = np.tensordot(np.asarray(w.h), d, 1) + float(w.b)  # Σ_i h_i D_i + b
  k = np.exp(-0.5 / (1 + np.exp(-z)))  # exp(−sigmoid(z)/2)
  return k + (noise + jitter) * np.eye(len(items))


def _numpy_nll(emb, items, ratings, w, noise):
  y = ratings - ratings.mean()
  sigma = _numpy_sigma(emb, items, w, noise)
  return -multivariate_normal(np.zeros(len(y)), sigma).logpdf(y)


def _flat(w):
  return np.concatenate([np.ravel(w.h), np.ravel(w.b)])


def _unflat(x):
  return EnsembleWeights(h=jnp.asarray(x[:-1]), b=jnp.asarray(x[-1]))


@pytest.mark.parametrize("fn", [obj.user_nll, obj.user_nll_autodiff])
def test_nll_matches_scipy_logpdf(fn):
  emb, items, ratings, w = _problem(0)
  assert np.linalg.eigvalsh(_numpy_sigma(emb, items, w, NOISE)).min() > 0
  user = _user(emb, items, ratings, n_pad=len(items) + 4)
  got = jax.jit(lambda w, u: fn(w, u, noise_var=NOISE, jitter=0.0))(w, user)
  np.testing.assert_allclose(got, _numpy_nll(emb, items, ratings, w, NOISE), rtol=1e-12)


def test_grad_matches_finite_differences_of_scipy():
  emb, items, ratings, w = _problem(1)
  user = _user(emb, items, ratings, n_pad=12)
  grad = jax.jit(jax.grad(lambda w: obj.user_nll(w, user, noise_var=NOISE,
                                                  jitter=0.0)))(w)
  x0, eps = _flat(w), 1e-5
  fd = np.zeros_like(x0)
  for i in range(len(x0)):
    e = np.zeros_like(x0)
    e[i] = eps
    fd[i] = (_numpy_nll(emb, items, ratings, _unflat(x0 + e), NOISE)
             - _numpy_nll(emb, items, ratings, _unflat(x0 - e), NOISE)) / (2 * eps)
  np.testing.assert_allclose(_flat(grad), fd, rtol=1e-7, atol=1e-8)


def test_hand_derivatives_match_autodiff():
  """∇ℓ, the Hessian, H v (custom_jvp and custom_vjp forms) vs plain autodiff."""
  emb, items, ratings, w = _problem(2)
  user = _user(emb, items, ratings, n_pad=11)
  kw = dict(noise_var=NOISE)
  v = np.array([0.3, -1.0, 0.7, -0.4])

  val_ad, grad_ad = jax.jit(jax.value_and_grad(
      lambda w: obj.user_nll_autodiff(w, user, **kw)))(w)
  for f in (obj.user_nll_and_grad, obj.user_nll_and_grad_rev):
    val, grad = jax.jit(lambda w: f(w, user, **kw))(w)
    np.testing.assert_allclose(val, val_ad, rtol=1e-12)
    chex.assert_trees_all_close(grad, grad_ad, rtol=1e-10, atol=1e-12)

  hess_ad = jax.jit(jax.hessian(
      lambda x: obj.user_nll_autodiff(_unflat(x), user, **kw)))(_flat(w))
  hess = jax.jit(jax.hessian(lambda x: obj.user_nll(_unflat(x), user, **kw)))(_flat(w))
  np.testing.assert_allclose(hess, hess_ad, rtol=1e-9, atol=1e-11)

  hv = jax.jit(lambda w, v: obj.user_hvp(w, user, v, **kw))(w, _unflat(v))
  np.testing.assert_allclose(_flat(hv), hess_ad @ v, rtol=1e-9, atol=1e-11)
  # The reverse-mode form: VJP of the gradient map = H v (H symmetric).
  vjp = jax.jit(lambda w, v: jax.vjp(
      lambda a: obj.user_nll_and_grad_rev(a, user, **kw)[1], w)[1](v)[0])
  np.testing.assert_allclose(_flat(vjp(w, _unflat(v))), hess_ad @ v, rtol=1e-9,
                             atol=1e-11)


def test_padding_gives_same_value_gradient_and_hvp():
  emb, items, ratings, w = _problem(3)
  kw = dict(noise_var=NOISE)

  v = EnsembleWeights(h=jnp.asarray([0.3, -1.0, 0.7]), b=jnp.asarray(-0.4))

  @jax.jit
  def all_of_it(w, user):
    return (obj.user_nll_and_grad_rev(w, user, **kw),
            obj.user_hvp(w, user, v, **kw),
            jax.value_and_grad(obj.user_nll_autodiff)(w, user, **kw))

  results = [all_of_it(w, _user(emb, items, ratings, n_pad=n_pad))
             for n_pad in (len(items), len(items) + 1, len(items) + 13)]
  for other in results[1:]:
    chex.assert_trees_all_close(other, results[0], rtol=1e-11, atol=1e-12)


def test_padding_rows_do_not_leak():
  """Garbage distances in padded slots (e.g. a stale item index) change nothing."""
  emb, items, ratings, w = _problem(4)
  user = _user(emb, items, ratings, n_pad=14)
  noisy = user._replace(d=jnp.where(user.mask[None, :, None] & user.mask[None, None, :],
                                    user.d, 7.0))
  for f in (obj.user_nll, obj.user_nll_autodiff):
    vg = jax.jit(jax.value_and_grad(lambda w, u: f(w, u, noise_var=NOISE)))
    chex.assert_trees_all_close(vg(w, noisy), vg(w, user), rtol=1e-12)


@pytest.mark.parametrize("n,leaf", [(1, 64), (5, 2), (64, 64), (97, 32)])
def test_spd_inverse_logdet(n, leaf):
  rng = np.random.default_rng(n)
  x = rng.normal(size=(n, n))
  a = x @ x.T / n + 0.1 * np.eye(n)
  inv, logdet = jax.jit(lambda a: obj.spd_inverse_logdet(a, leaf=leaf))(jnp.asarray(a))
  np.testing.assert_allclose(inv, np.linalg.inv(a), rtol=1e-9, atol=1e-9)
  np.testing.assert_allclose(logdet, np.linalg.slogdet(a)[1], rtol=1e-11, atol=1e-11)


def test_spd_inverse_of_indefinite_is_nan():
  a = jnp.asarray(np.diag([1.0, -1.0, 2.0, 3.0]))
  assert np.isnan(jax.jit(lambda a: obj.spd_inverse_logdet(a, leaf=2)[1])(a))


def test_user_channel_distances_matches_numpy():
  rng = np.random.default_rng(5)
  emb = [rng.normal(size=(20, k)) for k in (2, 3, 1)]
  lam = [rng.uniform(0.5, 2.0, size=k) for k in (2, 3, 1)]
  items = np.array([4, 0, 17, 9, 0, 0])  # last two slots are padding
  mask = np.array([True, True, True, True, False, False])
  d = obj.user_channel_distances([jnp.asarray(e) for e in emb], jnp.asarray(items),
                                 jnp.asarray(mask), [jnp.asarray(l) for l in lam])
  chex.assert_shape(d, (3, 6, 6))
  for i in range(3):
    for a in range(6):
      for b in range(6):
        want = 0.0
        if mask[a] and mask[b]:
          diff = emb[i][items[a]] - emb[i][items[b]]
          want = np.sum(diff * lam[i] * diff)
        np.testing.assert_allclose(d[i, a, b], want, rtol=1e-12, atol=1e-14)
  assert np.all(np.diagonal(np.asarray(d), axis1=1, axis2=2) == 0)


def test_pad_users_centres_and_masks():
  item_idx, y, mask = obj.pad_users([np.array([3, 1]), np.array([5, 6, 7])],
                                    [np.array([4.0, 2.0]), np.array([1.0, 2.0, 6.0])],
                                    n_pad=4)
  np.testing.assert_array_equal(item_idx, [[3, 1, 0, 0], [5, 6, 7, 0]])
  np.testing.assert_allclose(y, [[1, -1, 0, 0], [-2, -1, 3, 0]])
  np.testing.assert_array_equal(mask, [[1, 1, 0, 0], [1, 1, 1, 0]])
  _, y_raw, _ = obj.pad_users([np.array([3])], [np.array([4.0])], n_pad=2, center=False)
  np.testing.assert_allclose(y_raw, [[4.0, 0.0]])


@pytest.mark.parametrize("items,ratings,what", [
    ([np.arange(5)], [np.ones(5)], "outside 1..n_pad=4"),
    ([np.arange(0)], [np.ones(0)], "outside 1..n_pad=4"),
    ([np.arange(3)], [np.ones(2)], "2 ratings for 3 items"),
    ([np.arange(3)], [], "0 rating lists for 1 item lists"),
])
def test_pad_users_errors(items, ratings, what):
  with pytest.raises(DataError, match=what):
    obj.pad_users(items, ratings, n_pad=4, source="users.csv")


def test_float32_follows_inputs_and_is_close():
  emb, items, ratings, w = _problem(6)
  u64 = _user(emb, items, ratings, n_pad=12)
  u32 = _user(emb, items, ratings, n_pad=12, dtype=np.float32)
  w32 = jax.tree.map(lambda a: a.astype(jnp.float32), w)
  vg = jax.jit(lambda w, u: obj.user_nll_and_grad(w, u, noise_var=NOISE))
  val, grad = vg(w32, u32)
  assert val.dtype == jnp.float32 and grad.h.dtype == jnp.float32
  val64, grad64 = vg(w, u64)
  np.testing.assert_allclose(val, val64, rtol=1e-5)
  chex.assert_trees_all_close(grad, grad64, rtol=1e-3, atol=1e-4)


def test_unknown_objective_raises():
  with pytest.raises(ValueError, match="objective must be one of"):
    obj.nll_and_grad_fn("newton")
