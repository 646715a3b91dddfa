"""Contrastive loss (Eq. 2) against a pure-Python reference."""

import jax
import jax.numpy as jnp
import numpy as np

from sslmetric.model import losses

contrastive_loss = jax.jit(losses.contrastive_loss)


def _py_loss(d, y, tau):
  return sum((1 - yi) * di + yi * max(0.0, tau - di) for di, yi in zip(d, y)) / len(d)


def test_matches_python_reference():
  rng = np.random.default_rng(0)
  d = rng.uniform(0.0, 1.0, 17)
  y = rng.integers(0, 2, 17)
  for tau in (0.3, 0.8, 1.5):
    np.testing.assert_allclose(contrastive_loss(d=d, y=y, margin=tau),
                               _py_loss(d.tolist(), y.tolist(), tau), rtol=1e-14)


def test_cases_by_hand():
  d = np.array([0.2, 0.2, 0.9])
  y = np.array([0, 1, 1])  # similar: 0.2; dissimilar inside margin: 0.5-0.2; outside: 0
  np.testing.assert_allclose(contrastive_loss(d=d, y=y, margin=0.5), (0.2 + 0.3 + 0.0) / 3)


def test_mask_is_mean_over_valid_rows():
  rng = np.random.default_rng(1)
  d, y = rng.uniform(size=10), rng.integers(0, 2, 10)
  mask = np.arange(10) < 6
  got = contrastive_loss(d=np.where(mask, d, 99.0), y=y, margin=0.7, mask=mask)
  np.testing.assert_allclose(got, _py_loss(d[:6].tolist(), y[:6].tolist(), 0.7), rtol=1e-14)
  assert float(contrastive_loss(d=d, y=y, margin=0.7, mask=np.zeros(10, bool))) == 0.0


def test_gradient_pulls_similar_and_pushes_dissimilar():
  d = jnp.array([0.3, 0.3, 0.9])
  y = jnp.array([0.0, 1.0, 1.0])
  g = jax.grad(lambda dd: losses.contrastive_loss(d=dd, y=y, margin=0.5))(d)
  np.testing.assert_allclose(g, np.array([1.0, -1.0, 0.0]) / 3)


def test_float32_stays_float32():
  d = jnp.asarray([0.1, 0.6], jnp.float32)
  out = contrastive_loss(d=d, y=np.array([1, 0]), margin=0.5)
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(out, (0.4 + 0.6) / 2, rtol=1e-6)
