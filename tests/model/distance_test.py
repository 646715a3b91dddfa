"""Channel distances, ensemble distance and kernel matrices against numpy references."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslmetric.model import distance
from sslmetric.model.ensemble import EnsembleWeights

# Jitted once per module: one compile per shape instead of one per eager primitive.
kernel_matrix = jax.jit(distance.kernel_matrix)
distance_matrix = jax.jit(distance.distance_matrix)
channel_distances = jax.jit(distance.channel_distances)


def _embs(rng, n, widths=(5, 3)):
  return tuple(rng.normal(size=(n, w)) for w in widths)


def _np_channel_d(ea, eb, lam=None):
  """D_i(a, b) = Σ_k λ_k (a_k - b_k)² by explicit differences: [na, nb, p]."""
  out = []
  for i, (a, b) in enumerate(zip(ea, eb)):
    la = np.ones(a.shape[1]) if lam is None else np.asarray(lam[i])
    out.append(np.sum(la * (a[:, None, :] - b[None, :, :]) ** 2, axis=-1))
  return np.stack(out, -1)


def _np_kernel(h, b, d_ch):
  return np.exp(-0.5 / (1.0 + np.exp(-(d_ch @ h + b))))


def test_channel_distances_match_explicit_differences():
  rng = np.random.default_rng(0)
  ea, eb = _embs(rng, 7), _embs(rng, 4)
  lam = (rng.uniform(0.1, 2.0, 5), rng.uniform(0.1, 2.0, 3))
  fn = channel_distances
  np.testing.assert_allclose(fn(ea, eb), _np_channel_d(ea, eb), rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(fn(ea, eb, lam=lam), _np_channel_d(ea, eb, lam),
                             rtol=1e-12, atol=1e-12)
  pair = distance.pair_channel_distances(tuple(e[:4] for e in ea), eb,
                                         lam=lam)
  np.testing.assert_allclose(pair, np.stack([np.diagonal(_np_channel_d(
      tuple(e[:4] for e in ea), eb, lam)[..., i]) for i in range(2)], -1), rtol=1e-12)


def test_self_distances_symmetric_zero_diagonal_nonnegative():
  rng = np.random.default_rng(1)
  e = _embs(rng, 9)
  e = tuple(np.concatenate([x, x[:2]]) for x in e)  # duplicates: exact zeros off-diagonal
  d = np.asarray(channel_distances(e))
  np.testing.assert_array_equal(d, np.swapaxes(d, 0, 1))
  np.testing.assert_array_equal(np.diagonal(d, axis1=0, axis2=1), 0.0)
  assert d.min() >= 0.0
  np.testing.assert_allclose(d, _np_channel_d(e, e), atol=1e-12)


def test_one_channel_ensemble_is_sigmoid_of_scaled_distance():
  rng = np.random.default_rng(2)
  ea, eb = _embs(rng, 6, (4,)), _embs(rng, 5, (4,))
  w = EnsembleWeights(h=jnp.array([0.7]), b=jnp.array(-0.4))
  d1 = _np_channel_d(ea, eb)[..., 0]
  np.testing.assert_allclose(distance_matrix(w, ea, eb),
                             1.0 / (1.0 + np.exp(-(0.7 * d1 - 0.4))), rtol=1e-12)
  np.testing.assert_allclose(distance.pair_distance(w, tuple(e[:5] for e in ea), eb),
                             1.0 / (1.0 + np.exp(-(0.7 * np.diagonal(d1) - 0.4))), rtol=1e-12)


def test_kernel_symmetric_in_range_with_exact_diagonal():
  rng = np.random.default_rng(3)
  e = _embs(rng, 12)
  h, b = np.array([0.8, 1.5]), -0.3
  w = EnsembleWeights(h=jnp.asarray(h), b=jnp.asarray(b))
  k = np.asarray(kernel_matrix(w, e))
  np.testing.assert_array_equal(k, k.T)
  diag = np.exp(-0.5 / (1.0 + np.exp(-b)))  # k(a, a) = exp(-sigmoid(b)/2)
  np.testing.assert_allclose(np.diagonal(k), diag, rtol=1e-14)
  np.testing.assert_allclose(distance.kernel_diag(w, 12), diag, rtol=1e-14)
  # With h ≥ 0: D ∈ [sigmoid(b), 1) so k ∈ (exp(-1/2), k(a, a)] (closed in floats).
  assert k.min() >= np.exp(-0.5) and k.max() <= diag + 1e-15
  np.testing.assert_allclose(k, _np_kernel(h, b, _np_channel_d(e, e)), rtol=1e-12)


def test_kernel_psd_in_near_gaussian_regime():
  # For b ≫ 0 and h ≥ 0, K ≈ e^(-1/2)·exp∘(e^(-b)·G/2) with G Gaussian: PSD by Schur.
  rng = np.random.default_rng(4)
  for _ in range(5):
    e = _embs(rng, 25, (3, 2))
    w = EnsembleWeights(h=jnp.asarray(rng.uniform(0.1, 2.0, 2)), b=jnp.asarray(6.0))
    k = np.asarray(kernel_matrix(w, e))
    assert np.linalg.eigvalsh(k).min() > -1e-10 * k[0, 0]


def test_kernel_can_be_indefinite():
  """Documents a property of Eq. 5 + 7: not PSD in general (soft threshold for b < 0)."""
  x = (np.array([[0.0], [1.0], [2.0], [3.0]]),)  # points on a line, D₁ = (i - j)²
  w = EnsembleWeights(h=jnp.array([4.0]), b=jnp.array(-6.0))
  k = np.asarray(kernel_matrix(w, x))
  np.testing.assert_allclose(k, _np_kernel(np.array([4.0]), -6.0, _np_channel_d(x, x)),
                             rtol=1e-12)
  lam_min = np.linalg.eigvalsh(k).min()
  assert lam_min < -0.01
  np.testing.assert_allclose(distance.indefinite_shift(jnp.asarray(k)), -lam_min, rtol=1e-10)


def test_float32_matches_float64():
  rng = np.random.default_rng(5)
  e = tuple(np.tanh(x) for x in _embs(rng, 20, (50, 30)))
  w64 = EnsembleWeights(h=jnp.array([0.05, 0.1]), b=jnp.array(-1.0))
  w32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), w64)
  e32 = tuple(jnp.asarray(x, jnp.float32) for x in e)
  k64, k32 = kernel_matrix(w64, e), kernel_matrix(w32, e32)
  assert k32.dtype == jnp.float32
  # D_i up to ~200 computed as ‖a‖² + ‖b‖² - 2a·b: absolute error ~ 1e-4 in D_i, which
  # h·D feeds through sigmoid' ≤ 1/4 and exp(-·/2) ≤ 1/2: |Δk| ≲ 1e-5.
  np.testing.assert_allclose(k32, k64, atol=2e-6)
  d32 = channel_distances(e32)
  np.testing.assert_allclose(d32, _np_channel_d(e, e), atol=1e-4)


def test_map_blocks_equals_direct_and_traces_once():
  rng = np.random.default_rng(6)
  q, c = _embs(rng, 23), _embs(rng, 11)
  w = EnsembleWeights(h=jnp.array([0.3, 0.6]), b=jnp.array(0.1))

  @chex.assert_max_traces(n=1)
  def block_topk(qb):
    d = distance_matrix(w, qb, c)
    return d, jax.lax.top_k(-d, 3)[1]

  d, top = distance.map_blocks(block_topk, q, block_size=5)  # 23 = 4·5 + 3 (padded)
  d_ref = np.asarray(distance_matrix(w, q, c))
  chex.assert_shape([d, top], [(23, 11), (23, 3)])
  np.testing.assert_allclose(d, d_ref, rtol=1e-14)
  np.testing.assert_array_equal(top, np.argsort(d_ref, axis=1, kind="stable")[:, :3])


def test_pad_rows_mask_and_errors():
  blocks, n, mask = distance.pad_rows((np.arange(7), np.ones((7, 2))), 3)
  assert n == 7
  chex.assert_shape([blocks[0], blocks[1], mask], [(3, 3), (3, 3, 2), (3, 3)])
  np.testing.assert_array_equal(np.asarray(mask).ravel(), np.arange(9) < 7)
  np.testing.assert_array_equal(np.asarray(blocks[0]).ravel()[7:], 0)  # copies of row 0
  with pytest.raises(ValueError, match="leading axes differ"):
    distance.pad_rows((np.arange(7), np.arange(6)), 3)


def test_jitter_scales_with_dtype():
  assert distance.jitter_scale(jnp.float64) == 1e-10
  assert distance.jitter_scale(jnp.float32) == 1e-6
  k = 2.0 * jnp.eye(3, dtype=jnp.float32)
  np.testing.assert_allclose(np.diagonal(distance.add_jitter(k)), 2.0 + 2e-6, rtol=1e-7)
