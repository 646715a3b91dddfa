"""Tests of the synthetic truth: D*, K* against independent numpy code; GP draws' moments."""

import jax.numpy as jnp
import numpy as np
import pytest

from sslmetric.data import synthetic as syn
from sslmetric.model.ensemble import EnsembleWeights


def _np_tower(params, x):
  """Independent numpy tower: tanh(W_t·sigmoid(W_s·relu(W_o·x + b_o) + b_s) + b_t)."""
  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  z = np.maximum(x @ p["w_o"] + p["b_o"], 0.0)
  z = 1.0 / (1.0 + np.exp(-(z @ p["w_s"] + p["b_s"])))
  return np.tanh(z @ p["w_t"] + p["b_t"])


def _np_distance(metric, xa, xb, h, b):
  """D(a, b) = sigmoid(Σ_i h_i ‖F_i(a) − F_i(b)‖² + b), by explicit differences."""
  z = np.full((len(xa[0]), len(xb[0])), float(b))
  for i, tower in enumerate(metric.towers):
    fa, fb = _np_tower(tower, xa[i]), _np_tower(tower, xb[i])
    z += float(h[i]) * np.sum((fa[:, None, :] - fb[None, :, :]) ** 2, axis=-1)
  return 1.0 / (1.0 + np.exp(-z))


@pytest.fixture(scope="module")
def metric():
  return syn.make_true_metric(3, num_channels=2, feature_dim=3, hidden=4, h=(4.0, 2.0),
                              b=2.0, noise_var=0.1)


def test_distance_and_kernel_match_numpy_reference(metric):
  rng = np.random.default_rng(0)
  xa = syn.sample_items(rng, 7, metric)
  xb = syn.sample_items(rng, 5, metric)
  assert [x.shape for x in xa] == [(7, 3), (7, 3)]
  ref = _np_distance(metric, xa, xb, metric.w.h, metric.w.b)
  np.testing.assert_allclose(syn.true_distance(metric, xa, xb), ref, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(syn.true_kernel(metric, xa, xb), np.exp(-ref / 2), rtol=1e-10)
  # Self distances: symmetric, D(a, a) = sigmoid(b*).
  d_aa = syn.true_distance(metric, xa)
  np.testing.assert_array_equal(d_aa, d_aa.T)
  np.testing.assert_allclose(np.diag(d_aa), 1 / (1 + np.exp(-2.0)), rtol=1e-12)


def test_per_user_weights_change_the_metric(metric):
  rng = np.random.default_rng(1)
  ws = syn.sample_user_weights(rng, metric, num_users=4, h_spread=0.5, b_spread=0.1)
  assert ws.h.shape == (4, 2) and ws.b.shape == (4,)
  assert np.all(np.asarray(ws.h) > 0)
  x = syn.sample_items(rng, 6, metric)
  w1 = syn.user_weights(ws, 1)
  ref = _np_distance(metric, x, x, w1.h, w1.b)
  np.testing.assert_allclose(syn.true_distance(metric, x, w=w1), ref, rtol=1e-10, atol=1e-12)
  assert np.max(np.abs(ref - syn.true_distance(metric, x))) > 1e-3  # differs from w*


def test_empirical_covariance_matches_k_star_plus_noise(metric):
  """Many draws on 6 items: sample covariance vs Σ = K* + σ²I, tolerance from the sample size.

  For Gaussian data the sample covariance entry has standard error
  se_ij = sqrt((Σ_ii Σ_jj + Σ_ij²) / N); every entry must lie within 5 se (and the mean
  within 5 sqrt(Σ_ii / N)). The same data must *reject* K* without the noise (σ² = 0.1 is
  ≈ 15 se), so the test can fail.
  """
  rng = np.random.default_rng(2)
  x = syn.sample_items(rng, 6, metric)
  num = 20000
  draw = syn.sample_ratings(rng, metric, x, num_draws=num)
  assert draw.y.shape == (num, 6)
  sigma = draw.k + metric.noise_var * np.eye(6)
  np.testing.assert_allclose(draw.k, syn.true_kernel(metric, x), rtol=0, atol=0)
  mean = draw.y.mean(axis=0)
  assert np.all(np.abs(mean) < 5 * np.sqrt(np.diag(sigma) / num))
  emp = np.cov(draw.y, rowvar=False, bias=True)  # mean is known to be 0; N large
  se = np.sqrt((np.outer(np.diag(sigma), np.diag(sigma)) + sigma ** 2) / num)
  assert np.max(np.abs(emp - sigma) / se) < 5.0
  assert np.max(np.abs(emp - draw.k) / se) > 10.0  # without σ²I: clearly rejected


def test_draws_are_seeded_and_single_draw_shape(metric):
  x = syn.sample_items(np.random.default_rng(3), 10, metric)
  a = syn.sample_ratings(np.random.default_rng(4), metric, x)
  b = syn.sample_ratings(np.random.default_rng(4), metric, x)
  assert a.y.shape == (10,)
  np.testing.assert_array_equal(a.y, b.y)
  data = syn.make_dataset(np.random.default_rng(5), metric, 12)
  assert data.y.shape == (12,) and len(data.inputs) == 2
  # λ_min is reported, and K* is indefinite (the known property of this kernel) or ≈ PSD.
  assert data.lambda_min == pytest.approx(
      np.linalg.eigvalsh(syn.true_kernel(metric, data.inputs))[0], abs=1e-12)


def test_refuses_a_covariance_that_is_not_positive_definite():
  bad = syn.make_true_metric(0, b=-3.0, noise_var=1e-4)  # strongly indefinite K*
  x = syn.sample_items(np.random.default_rng(0), 150, bad)
  with pytest.raises(ValueError, match="not safely positive definite"):
    syn.sample_ratings(np.random.default_rng(0), bad, x)


def test_make_true_metric_validates():
  with pytest.raises(ValueError, match="entries for 3 channels"):
    syn.make_true_metric(0, num_channels=3, h=(1.0, 2.0))
  with pytest.raises(ValueError, match="non-negative"):
    syn.make_true_metric(0, h=(1.0, -1.0))
  with pytest.raises(ValueError, match="noise_var"):
    syn.make_true_metric(0, noise_var=0.0)
  m = syn.make_true_metric(0, dtype=jnp.float32)
  assert m.towers[0]["w_o"].dtype == jnp.float32 and m.w.h.dtype == jnp.float32
  assert isinstance(m.w, EnsembleWeights)
