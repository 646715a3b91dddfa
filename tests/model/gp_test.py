"""Exact GP: NLL vs scipy, predictions vs numpy, gradients vs finite differences."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from sslmetric.data.types import ChannelKind
from sslmetric.model import distance, gp, towers
from sslmetric.model.ensemble import EnsembleWeights

N = 12
SPECS = (towers.ChannelSpec("genre", ChannelKind.MULTI_HOT, 6),
         towers.ChannelSpec("year", ChannelKind.NUMERIC, 1),
         towers.ChannelSpec("id", ChannelKind.ITEM_ID, N))

exact_nll = jax.jit(gp.exact_nll, static_argnames="shift_indefinite")
exact_predict = jax.jit(gp.exact_predict, static_argnames=("include_noise",
                                                           "shift_indefinite"))
kernel_matrix = jax.jit(distance.kernel_matrix)
embed = jax.jit(towers.embed)
init_model_params = jax.jit(gp.init_model_params, static_argnums=1,
                            static_argnames=("hidden", "id_width", "dtype", "noise_var0"))


def _model(seed, dtype=jnp.float64):
  rng = np.random.default_rng(seed)
  params = init_model_params(jax.random.key(seed), SPECS, hidden=4, id_width=3,
                                dtype=dtype, noise_var0=0.3)
  inputs = (rng.integers(0, 2, (N, 6)).astype(np.float32),
            rng.normal(size=(N, 1)).astype(np.float32), np.arange(N, dtype=np.int32))
  return params, inputs, rng.normal(size=N)


def _pd_kernel(rng, n, dtype=np.float64):
  """A PD kernel matrix of the model's form (b large enough for PSD, see distance.py)."""
  e = (rng.normal(size=(n, 3)),)
  w = EnsembleWeights(h=jnp.array([0.5]), b=jnp.array(2.0))
  return np.asarray(kernel_matrix(w, e), dtype)


def test_exact_nll_equals_scipy_logpdf():
  rng = np.random.default_rng(0)
  for n, noise in [(5, 0.1), (30, 0.02), (30, 1.3)]:
    k, y = _pd_kernel(rng, n), rng.normal(size=n)
    jitter = 1e-10 * np.mean(np.diagonal(k))  # gp.py's float64 jitter, relative to diag
    cov = k + (noise + jitter) * np.eye(n)
    ref = -stats.multivariate_normal.logpdf(y, mean=np.zeros(n), cov=cov)
    np.testing.assert_allclose(exact_nll(k=k, y=y, noise_var=noise), ref, rtol=1e-9)


def test_mask_equals_subset_and_padding_is_free():
  rng = np.random.default_rng(1)
  k, y = _pd_kernel(rng, 10), rng.normal(size=10)
  mask = np.array([1, 1, 0, 1, 0, 1, 1, 1, 0, 1], bool)
  sub = exact_nll(k=k[np.ix_(mask, mask)], y=y[mask], noise_var=0.2)
  k_bad = k.copy()
  k_bad[~mask] = 5.0  # whatever the padded rows hold
  np.testing.assert_allclose(exact_nll(k=k_bad, y=y, noise_var=0.2, mask=mask), sub,
                             rtol=1e-12)


def test_exact_predict_matches_numpy_solve():
  rng = np.random.default_rng(2)
  kk = _pd_kernel(rng, 14)  # train 10 + test 4
  k, k_cross, y, s2 = kk[:10, :10], kk[10:, :10], rng.normal(size=10), 0.15
  sigma = k + s2 * np.eye(10)
  mean_ref = k_cross @ np.linalg.solve(sigma, y)
  var_ref = np.diagonal(kk[10:, 10:]) - np.sum(k_cross * np.linalg.solve(sigma, k_cross.T).T,
                                               axis=1)
  mean, var = exact_predict(k=k, y=y, noise_var=s2, k_cross=k_cross,
                            k_test_diag=np.diagonal(kk[10:, 10:]))
  np.testing.assert_allclose(mean, mean_ref, rtol=1e-9)
  np.testing.assert_allclose(var, var_ref, rtol=1e-8)
  _, var_y = exact_predict(k=k, y=y, noise_var=s2, k_cross=k_cross,
                           k_test_diag=np.diagonal(kk[10:, 10:]), include_noise=True)
  np.testing.assert_allclose(var_y, var_ref + s2, rtol=1e-8)


def test_noise_transform_positive_and_invertible():
  for v in [1e-3, 0.1, 2.0, 50.0]:
    raw = gp.noise_raw(v)
    np.testing.assert_allclose(gp.noise_variance(raw), v, rtol=1e-10)
  assert float(gp.noise_variance(-1e3)) >= gp.NOISE_FLOOR > 0
  assert gp.noise_raw(0.1, dtype=jnp.float32).dtype == jnp.float32


_grad_cache = {}


def _directional_fd(f, params, eps, seed):
  """(f(θ + εv) - f(θ - εv)) / 2ε against ∇f·v, for a random direction v (f jitted)."""
  rng = np.random.default_rng(seed)
  leaves, tdef = jax.tree_util.tree_flatten(params)
  v = jax.tree_util.tree_unflatten(tdef, [rng.normal(size=np.shape(l)) for l in leaves])
  shift = jax.jit(lambda s: jax.tree_util.tree_map(lambda p, d: p + s * d, params, v))
  fd = (f(shift(eps)) - f(shift(-eps))) / (2 * eps)
  g = _grad_cache.setdefault(f, jax.jit(jax.grad(f)))(params)
  ad = sum(jnp.vdot(a, b) for a, b in zip(jax.tree_util.tree_leaves(g),
                                            jax.tree_util.tree_leaves(v)))
  return float(fd), float(ad)


def test_exact_nll_gradient_matches_finite_differences():
  params, inputs, y = _model(3)
  f = jax.jit(lambda p: gp.model_nll(p, inputs, y))
  for seed in range(3):
    fd, ad = _directional_fd(f, params, 1e-5, seed)
    np.testing.assert_allclose(ad, fd, rtol=1e-6)


def test_model_nll_equals_kernel_route_and_channel_route():
  params, inputs, y = _model(4)
  emb = embed(params["towers"], inputs)
  k = kernel_matrix(params["w"], emb)
  s2 = gp.noise_variance(params["noise"])
  ref = -stats.multivariate_normal.logpdf(y, np.zeros(N), np.asarray(k) + float(s2) * np.eye(N))
  np.testing.assert_allclose(jax.jit(gp.model_nll)(params, inputs, y), ref, rtol=1e-9)
  d_ch = jax.jit(distance.channel_distances)(emb)
  from_channels = jax.jit(gp.exact_nll_from_channels)
  np.testing.assert_allclose(from_channels(w=params["w"], d_channels=d_ch, y=y, noise_var=s2),
                             ref, rtol=1e-9)


def test_model_predict_exact():
  params, inputs, y = _model(5)
  test_inputs = tuple(x[:3] for x in inputs[:2]) + (np.array([7, 0, 11], np.int32),)
  mean, var = jax.jit(gp.model_predict)(params, inputs, y, test_inputs)
  emb, emb_t = (embed(params["towers"], x) for x in (inputs, test_inputs))
  k = np.asarray(kernel_matrix(params["w"], emb))
  kc = np.asarray(kernel_matrix(params["w"], emb_t, emb))
  sigma = k + float(gp.noise_variance(params["noise"])) * np.eye(N)
  np.testing.assert_allclose(mean, kc @ np.linalg.solve(sigma, y), rtol=1e-9)
  kd = float(distance.kernel_diag(params["w"], 1)[0])
  np.testing.assert_allclose(var, kd - np.sum(kc * np.linalg.solve(sigma, kc.T).T, 1),
                             rtol=1e-8)
  assert np.all(np.asarray(var) > 0)


def test_jitted_model_nll_does_not_retrace():
  params, inputs, y = _model(6)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def loss_and_grad(p, ys):
    return jax.value_and_grad(gp.model_nll)(p, inputs, ys)

  a = loss_and_grad(params, y)
  p2 = jax.tree_util.tree_map(lambda x: x * 1.01, params)
  b = loss_and_grad(p2, y + 0.5)
  assert float(a[0]) != float(b[0])


def test_float32_agrees_with_float64():
  params, inputs, y = _model(7)
  p32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), params)
  vg = jax.jit(jax.value_and_grad(gp.model_nll))
  v64, g64 = vg(params, inputs, y)
  v32, g32 = vg(p32, inputs, y.astype(np.float32))
  assert v32.dtype == jnp.float32
  # σ² = 0.3 keeps cond(Σ) ~ 30: float32 rounding (~1e-7) amplified to ~1e-5 relative.
  np.testing.assert_allclose(v32, v64, rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(g32), jax.tree_util.tree_leaves(g64)):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_indefinite_kernel_nan_unless_shifted():
  x = (np.array([[0.0], [1.0], [2.0], [3.0]]),)
  k = np.asarray(kernel_matrix(EnsembleWeights(jnp.array([4.0]), jnp.array(-6.0)), x))
  lam_min = np.linalg.eigvalsh(k).min()
  assert lam_min < -0.01
  y = np.array([0.5, -0.2, 0.1, -0.4])
  assert np.isnan(exact_nll(k=k, y=y, noise_var=0.5 * -lam_min))
  shifted = exact_nll(k=k, y=y, noise_var=0.01, shift_indefinite=True)
  ref = -stats.multivariate_normal.logpdf(y, np.zeros(4), k + (0.01 - lam_min) * np.eye(4))
  np.testing.assert_allclose(shifted, ref, rtol=1e-6)
  # A PD kernel is not shifted.
  kp = _pd_kernel(np.random.default_rng(8), 6)
  np.testing.assert_allclose(exact_nll(k=kp, y=np.ones(6), noise_var=0.1, shift_indefinite=True),
                             exact_nll(k=kp, y=np.ones(6), noise_var=0.1), rtol=1e-12)
