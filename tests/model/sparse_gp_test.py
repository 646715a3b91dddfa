"""Sparse GP (DTC / Titsias) against the exact GP, scipy, numpy and finite differences."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from sslmetric.data.types import ChannelKind
from sslmetric.model import distance, gp, sparse_gp, towers
from sslmetric.model.ensemble import EnsembleWeights

N = 14
SPECS = (towers.ChannelSpec("genre", ChannelKind.MULTI_HOT, 5),
         towers.ChannelSpec("id", ChannelKind.ITEM_ID, N))

sparse_nll = jax.jit(sparse_gp.sparse_nll, static_argnames="titsias")
sparse_predict = jax.jit(sparse_gp.sparse_predict, static_argnames="include_noise")
exact_nll = jax.jit(gp.exact_nll)
kernel_matrix = jax.jit(distance.kernel_matrix)
model_nll = jax.jit(gp.model_nll, static_argnames=("titsias", "block_size"))
embed = jax.jit(towers.embed)


@jax.jit
def dtc_and_titsias(k_nm, k_mm, k_diag, y, noise_var):
  """Both sparse objectives from one set of statistics (one compile per shape)."""
  stats = sparse_gp.sparse_stats(k_nm=k_nm, k_mm=k_mm, k_diag=k_diag, y=y)
  return (sparse_gp.sparse_nll_from_stats(stats, noise_var),
          sparse_gp.sparse_nll_from_stats(stats, noise_var, titsias=True))
init_model_params = jax.jit(gp.init_model_params, static_argnums=1,
                            static_argnames=("hidden", "id_width", "dtype", "noise_var0"))


def _pd_kernel(rng, n):
  """A PD kernel matrix of the model's form (b = 2, where it is PSD; see distance.py)."""
  w = EnsembleWeights(h=jnp.array([0.5]), b=jnp.array(2.0))
  return np.asarray(kernel_matrix(w, (rng.normal(size=(n, 3)),)))


def _np_sparse(k, idx, y, s2):
  """Reference DTC / Titsias via Q = K_nm (K_mm + jitter)⁻¹ K_mn and scipy."""
  k_nm, k_mm = k[:, idx], k[np.ix_(idx, idx)]
  k_mm = k_mm + 1e-10 * np.mean(np.diagonal(k_mm)) * np.eye(len(idx))
  q = k_nm @ np.linalg.solve(k_mm, k_nm.T)
  dtc = -stats.multivariate_normal.logpdf(y, np.zeros(len(y)), q + s2 * np.eye(len(y)))
  return dtc, dtc + np.trace(k - q) / (2 * s2)


def _model(seed, dtype=jnp.float64):
  rng = np.random.default_rng(seed)
  params = init_model_params(jax.random.key(seed), SPECS, hidden=4, id_width=3, dtype=dtype,
                             noise_var0=0.3)
  inputs = (rng.integers(0, 2, (N, 5)).astype(np.float32), np.arange(N, dtype=np.int32))
  return params, inputs, rng.normal(size=N)


def test_sparse_equals_exact_when_supporting_set_is_all_points():
  rng = np.random.default_rng(0)
  k, y = _pd_kernel(rng, 15), rng.normal(size=15)
  assert np.linalg.eigvalsh(k).min() > 1e-6  # no indefinite shift in play
  exact = exact_nll(k=k, y=y, noise_var=0.1)
  for titsias in (False, True):  # the public entry point, both variants
    got = sparse_nll(k_nm=k, k_mm=k, k_diag=np.diagonal(k), y=y, noise_var=0.1,
                     titsias=titsias)
    np.testing.assert_allclose(got, exact, rtol=1e-8)


def test_sparse_matches_numpy_nystrom_reference():
  rng = np.random.default_rng(1)
  k, y = _pd_kernel(rng, 20), rng.normal(size=20)
  idx = np.array([2, 5, 11, 17, 19])
  dtc_ref, tit_ref = _np_sparse(k, idx, y, 0.25)
  kw = dict(k_nm=k[:, idx], k_mm=k[np.ix_(idx, idx)], k_diag=np.diagonal(k), y=y,
            noise_var=0.25)
  np.testing.assert_allclose(sparse_nll(**kw), dtc_ref, rtol=1e-9)
  np.testing.assert_allclose(sparse_nll(**kw, titsias=True), tit_ref, rtol=1e-9)


def test_titsias_bound_tightens_to_exact_on_nested_sets():
  rng = np.random.default_rng(2)
  n = 24
  k, y = _pd_kernel(rng, n), rng.normal(size=n)
  exact = float(exact_nll(k=k, y=y, noise_var=0.05))
  order = rng.permutation(n)
  bounds, dtc = [], []
  for m in (2, 4, 8, 16, 24):
    idx = np.sort(order[:m])
    d, t = dtc_and_titsias(k[:, idx], k[np.ix_(idx, idx)], np.diagonal(k), y, 0.05)
    bounds.append(float(t))
    dtc.append(float(d))
  bounds = np.array(bounds)
  assert np.all(bounds >= exact - 1e-8)  # -ELBO ≥ -log p(y)
  assert np.all(np.diff(bounds) <= 1e-8)  # nested sets: the bound only improves
  assert bounds[0] - exact > 1.0  # and the test is not vacuous
  np.testing.assert_allclose([bounds[-1], dtc[-1]], exact, rtol=1e-8)
  assert abs(dtc[-2] - exact) < abs(dtc[0] - exact)


def test_blocked_stats_equal_dense_with_mask():
  rng = np.random.default_rng(3)
  n, m = 23, 6
  x = (rng.normal(size=(n, 3)), rng.normal(size=(n, 2)))
  w = EnsembleWeights(h=jnp.array([0.4, 0.9]), b=jnp.array(1.5))
  z = tuple(e[:m] for e in x)
  y, mask = rng.normal(size=n), rng.uniform(size=n) > 0.3
  k_nm, k_mm = kernel_matrix(w, x, z), kernel_matrix(w, z)
  kd = distance.kernel_diag(w, n)
  dense = sparse_gp.sparse_stats(k_nm=k_nm, k_mm=k_mm, k_diag=kd, y=y, mask=mask)
  blocked = jax.jit(lambda xs: sparse_gp.blocked_sparse_stats(
      k_mm=k_mm, k_rows=lambda e: distance.kernel_matrix(w, e, z), xs=xs, y=y, k_diag=kd,
      mask=mask, block_size=5))(x)  # 23 = 4·5 + 3: last block padded
  chex.assert_trees_all_close(blocked, dense, rtol=1e-12, atol=1e-12)
  assert float(blocked.n) == mask.sum()


def test_model_nll_sparse_matches_explicit_kernels():
  params, inputs, y = _model(4)
  idx = jnp.array([0, 3, 4, 9, 13])
  emb = embed(params["towers"], inputs)
  z = tuple(e[np.asarray(idx)] for e in emb)
  refs = dtc_and_titsias(kernel_matrix(params["w"], emb, z), kernel_matrix(params["w"], z),
                         distance.kernel_diag(params["w"], N), y,
                         gp.noise_variance(params["noise"]))
  for titsias, ref in zip((False, True), refs):
    got = model_nll(params, inputs, y, inducing_idx=idx, titsias=titsias, block_size=4)
    np.testing.assert_allclose(got, ref, rtol=1e-11)


def test_sparse_gradients_match_finite_differences():
  """Directional derivatives of DTC and Titsias NLLs (one jitted vector function)."""
  params, inputs, y = _model(5)
  idx = jnp.array([1, 2, 6, 8, 12])

  def f(p):
    return jnp.stack([gp.model_nll(p, inputs, y, inducing_idx=idx, titsias=t, block_size=4)
                      for t in (False, True)])

  f_jit, jac = jax.jit(f), jax.jit(jax.jacrev(f))
  rng = np.random.default_rng(5)
  leaves, tdef = jax.tree_util.tree_flatten(params)
  shift = jax.jit(lambda p, v, s: jax.tree_util.tree_map(lambda a, b: a + s * b, p, v))
  for _ in range(2):
    v = jax.tree_util.tree_unflatten(tdef, [rng.normal(size=np.shape(l)) for l in leaves])
    eps = 1e-5
    fd = (f_jit(shift(params, v, eps)) - f_jit(shift(params, v, -eps))) / (2 * eps)
    ad = sum(jnp.tensordot(j, b, axes=b.ndim) for j, b in zip(
        jax.tree_util.tree_leaves(jac(params)), jax.tree_util.tree_leaves(v)))
    np.testing.assert_allclose(ad, fd, rtol=1e-6)


def test_sparse_predict_matches_numpy_and_exact_at_full_set():
  rng = np.random.default_rng(6)
  kk = _pd_kernel(rng, 19)  # 15 train + 4 test
  k, k_t, kd_t, y, s2 = kk[:15, :15], kk[15:, :15], np.diagonal(kk)[15:], rng.normal(size=15), 0.2
  idx = np.array([0, 4, 7, 10, 14])
  k_nm, k_mm, k_tm = k[:, idx], k[np.ix_(idx, idx)], k_t[:, idx]
  # DTC: Σ = (K_mm + K_mn K_nm / σ²)⁻¹, mean = K_tm Σ K_mn y / σ²,
  # var = k_tt - K_tm K_mm⁻¹ K_mt + K_tm Σ K_mt.
  sig = np.linalg.inv(k_mm + k_nm.T @ k_nm / s2)
  mean_ref = k_tm @ sig @ k_nm.T @ y / s2
  var_ref = (kd_t - np.sum(k_tm * np.linalg.solve(k_mm, k_tm.T).T, 1)
             + np.sum(k_tm * (sig @ k_tm.T).T, 1))
  mean, var = sparse_predict(k_nm=k_nm, k_mm=k_mm, y=y, noise_var=s2, k_tm=k_tm,
                             k_test_diag=kd_t)
  np.testing.assert_allclose(mean, mean_ref, rtol=1e-7)
  np.testing.assert_allclose(var, var_ref, rtol=1e-6)
  full = sparse_predict(k_nm=k, k_mm=k, y=y, noise_var=s2, k_tm=k_t, k_test_diag=kd_t)
  exact = gp.exact_predict(k=k, y=y, noise_var=s2, k_cross=k_t, k_test_diag=kd_t)
  chex.assert_trees_all_close(full, exact, rtol=1e-7, atol=1e-9)


def test_model_predict_sparse_matches_explicit():
  params, inputs, y = _model(7)
  idx = jnp.array([0, 5, 9, 11])
  test_inputs = (inputs[0][:5], np.array([3, 1, 4, 1, 5], np.int32))
  mean, var = jax.jit(gp.model_predict, static_argnames="block_size")(
      params, inputs, y, test_inputs, inducing_idx=idx, block_size=3)
  emb, emb_t = (embed(params["towers"], x) for x in (inputs, test_inputs))
  z = tuple(e[np.asarray(idx)] for e in emb)
  ref = sparse_predict(k_nm=kernel_matrix(params["w"], emb, z), k_mm=kernel_matrix(params["w"], z),
                       y=y, noise_var=gp.noise_variance(params["noise"]),
                       k_tm=kernel_matrix(params["w"], emb_t, z),
                       k_test_diag=distance.kernel_diag(params["w"], 5))
  chex.assert_trees_all_close((mean, var), ref, rtol=1e-10, atol=1e-12)


def test_indefinite_k_mm_is_shifted_to_a_finite_objective():
  x = (np.array([[0.0], [1.0], [2.0], [3.0]]),)
  k = np.asarray(kernel_matrix(EnsembleWeights(jnp.array([4.0]), jnp.array(-6.0)), x))
  lam = np.linalg.eigvalsh(k)
  assert lam[0] < -0.01
  y = np.array([0.5, -0.2, 0.1, -0.4])
  got = sparse_nll(k_nm=k, k_mm=k, k_diag=np.diagonal(k), y=y, noise_var=0.01)
  delta = 2 * -lam[0] + 1e-10 * np.mean(np.diagonal(k))
  q = k @ np.linalg.solve(k + delta * np.eye(4), k)
  assert np.linalg.eigvalsh(q).min() > 0  # Q PSD; its eigenvalues λ²/(λ+δ) ≤ |λ|
  np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(q)), np.sort(lam**2 / (lam + delta)),
                             rtol=1e-8)
  ref = -stats.multivariate_normal.logpdf(y, np.zeros(4), q + 0.01 * np.eye(4))
  np.testing.assert_allclose(got, ref, rtol=1e-8)


def test_select_inducing_random():
  a = sparse_gp.select_inducing(jax.random.key(0), 100, 10)
  b = sparse_gp.select_inducing(jax.random.key(0), 100, 10)
  c = sparse_gp.select_inducing(jax.random.key(1), 100, 10)
  chex.assert_trees_all_equal(a, b)
  assert a.dtype == jnp.int32 and len(set(np.asarray(a).tolist())) == 10
  assert np.all(np.diff(np.asarray(a)) > 0) and 0 <= int(a[0]) and int(a[-1]) < 100
  assert not np.array_equal(a, c)
  with pytest.raises(ValueError, match="m <= n"):
    sparse_gp.select_inducing(jax.random.key(0), 5, 6)


def _np_greedy_pivots(k, m):
  """Greedy pivoted Cholesky in numpy: pivot = argmax residual variance."""
  d, rows, idx = np.diagonal(k).copy(), np.zeros((m, len(k))), []
  for j in range(m):
    p = int(np.argmax(d))
    v = (k[:, p] - rows[:j].T @ rows[:j, p]) / np.sqrt(d[p])
    rows[j], d = v, d - v * v
    d[p] = -np.inf
    idx.append(p)
  return np.array(idx)


def test_select_inducing_pivoted():
  rng = np.random.default_rng(8)
  n, m = 40, 8
  e = (np.concatenate([rng.normal(size=(n - 10, 2)), rng.normal(size=(10, 2)) + 6.0]),)
  w = EnsembleWeights(h=jnp.array([0.3]), b=jnp.array(3.0))
  k = np.asarray(kernel_matrix(w, e))
  select = jax.jit(sparse_gp.select_inducing_pivoted, static_argnums=2)

  def resid(ix):  # r(x) = k(x, x) - Q(x, x) for the set ix
    return np.diagonal(k - k[:, ix] @ np.linalg.solve(k[np.ix_(ix, ix)], k[ix, :]))

  greedy = np.asarray(select(w, e, m))
  np.testing.assert_array_equal(greedy, _np_greedy_pivots(k, m))
  uniform = [np.sort(rng.choice(n, m, replace=False)) for _ in range(20)]
  rpc = [np.asarray(select(w, e, m, key=jax.random.key(s))) for s in range(20)]
  for ix in [greedy] + rpc:
    assert len(set(ix.tolist())) == m and ix.min() >= 0 and ix.max() < n
  np.testing.assert_array_equal(rpc[3], select(w, e, m, key=jax.random.key(3)))
  # Greedy keeps the worst residual small; random pivoting the total (the trace term).
  assert resid(greedy).max() < np.mean([resid(ix).max() for ix in uniform])
  assert np.mean([resid(ix).sum() for ix in rpc]) < np.mean([resid(ix).sum() for ix in uniform])


def test_jitted_sparse_nll_and_grad_do_not_retrace():
  params, inputs, y = _model(9)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(p, idx, ys):
    return jax.value_and_grad(gp.model_nll)(p, inputs, ys, inducing_idx=idx, titsias=True,
                                            block_size=8)

  a = step(params, jnp.array([0, 2, 4, 6]), y)
  b = step(params, jnp.array([1, 3, 5, 7]), y + 1.0)  # new set, same shapes: no retrace
  assert float(a[0]) != float(b[0])


def test_float32_agrees_with_float64():
  params, inputs, y = _model(10)
  p32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), params)
  idx = jnp.array([0, 3, 6, 9, 12])
  for titsias in (False, True):
    v64 = model_nll(params, inputs, y, inducing_idx=idx, titsias=titsias, block_size=4)
    v32 = model_nll(p32, inputs, y.astype(np.float32), inducing_idx=idx, titsias=titsias,
                    block_size=4)
    assert v32.dtype == jnp.float32
    np.testing.assert_allclose(v32, v64, rtol=1e-5)  # σ² = 0.3: well conditioned
