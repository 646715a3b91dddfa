"""Synthetic items with a known metric D* of the model's own form, and GP ratings from it.

The theory check (docs/theory.md) needs data whose true metric is known. Everything here
is the model of METHOD.md §1 with fixed random weights:

* items: p channels, each a vector of d standard-normal features, x^(i) ~ N(0, I_d);
* true towers F*_i (`towers.init_towers` with a fixed key, MLP towers of width h) and a
  true w* = (h*, b*);
* the true metric and kernel (Eq. 1, 7, 5), evaluated by the library's own functions:

      D*(a, b) = sigmoid(Σ_i h*_i ‖F*_i(a) − F*_i(b)‖² + b*),    K*(a, b) = exp(−D*(a, b)/2);

* ratings of n sampled items, one draw  r ~ N(0, K*_n + σ²I)  (not centred: the mean is 0
  by construction, and centring would change the covariance to the one of r − r̄).

Positive definiteness. exp(−sigmoid(·)/2) is not a positive-definite kernel
(distance.py); on n items λ_min(K*_n) < 0 and, because the kernel *operator* is
indefinite, |λ_min| grows about linearly with n: ≈ 1.2e-6·n for the defaults (b* = 2,
h* = (4, 2), towers of width 4 on 3 features; 5.5e-6·n at b* = 1.5). It shrinks like
e^(−2b*) as b* grows (sigmoid(z + b) = 1 − e^(−b−z) + e^(−2b−2z) − …: the e^(−2z) term,
a Gaussian kernel of twice the bandwidth, enters with a negative sign).
Covariance K*_n + σ²I is valid only while λ_min(K*_n) + σ² > 0, so `sample_ratings` computes
λ_min of every draw and refuses (ValueError) when λ_min(K*_n) + σ² < `min_margin`·σ²; the
defaults (b* = 2, σ² = 0.01) keep λ_min + σ² > 0.7·σ² up to n ≈ 2500. Nothing is
shifted or clipped: the draw is exactly N(0, K*_n + σ²I) or there is no draw.

Per-user variants (personalisation against a known answer): the towers are shared and each
user has its own w*_u = (h* ⊙ exp(s_h g_u), b* + s_b e_u), g_u ~ N(0, I_p), e_u ~ N(0, 1)
(`sample_user_weights`); `sample_ratings(..., w=w_u)` draws that user's ratings.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sslmetric.data.types import ChannelKind
from sslmetric.model.distance import channel_distances
from sslmetric.model.ensemble import EnsembleWeights, ensemble_distance, kernel_from_distance
from sslmetric.model.towers import ChannelSpec, embed, init_towers


class TrueMetric(NamedTuple):
  """The known truth: towers F*_i with fixed random weights, w* and the rating noise σ².

  Attributes:
    specs: one `ChannelSpec` per channel (NUMERIC, dim = d features), in channel order.
    towers: tuple of per-channel tower params (towers.py), fixed random weights.
    w: w* = (h* [p], b* []).
    noise_var: σ², the variance of the rating noise.
    hidden: width h of the towers (layers 2h, h, h).
  """
  specs: tuple
  towers: tuple
  w: EnsembleWeights
  noise_var: float
  hidden: int

  @property
  def num_channels(self) -> int:
    return len(self.specs)

  @property
  def feature_dim(self) -> int:
    return int(self.specs[0].dim)


def make_true_metric(seed: int, *, num_channels: int = 2, feature_dim: int = 3,
                     hidden: int = 4, h: Sequence[float] = (4.0, 2.0), b: float = 2.0,
                     noise_var: float = 0.01, dtype=jnp.float64) -> TrueMetric:
  """A true metric D* of the model's own form (towers with fixed random weights).

  Args:
    seed: towers are `init_towers(PRNGKey(seed), ...)` (LeCun-normal weights, zero biases).
    num_channels: p.
    feature_dim: d, features per channel.
    hidden: tower width h (the model fitted later should use the same, so that the model
      class contains the truth).
    h: h*, one non-negative weight per channel.
    b: b*; larger b* makes K* closer to positive semi-definite but flatter
      (D* ∈ (sigmoid(b*), 1)).
    noise_var: σ² > 0.
    dtype: dtype of the towers (float64 needs `jax_enable_x64`).
  """
  h = np.asarray(h, np.float64)
  if num_channels < 1 or feature_dim < 1 or hidden < 1:
    raise ValueError(f"num_channels, feature_dim and hidden must be >= 1, got "
                     f"{num_channels}, {feature_dim}, {hidden}")
  if h.shape != (num_channels,):
    raise ValueError(f"h* has {h.size} entries for {num_channels} channels")
  if np.any(h < 0):
    raise ValueError(f"h* must be non-negative (a metric), got {h.tolist()}")
  if not noise_var > 0:
    raise ValueError(f"noise_var must be > 0, got {noise_var}")
  specs = tuple(ChannelSpec(f"feat{i}", ChannelKind.NUMERIC, feature_dim)
                for i in range(num_channels))
  towers = init_towers(jax.random.PRNGKey(seed), specs, hidden=hidden, dtype=dtype)
  dt = towers[0]["w_o"].dtype
  w = EnsembleWeights(h=jnp.asarray(h, dt), b=jnp.asarray(b, dt))
  return TrueMetric(specs=specs, towers=towers, w=w, noise_var=float(noise_var),
                    hidden=hidden)


def sample_items(rng: np.random.Generator, n: int, metric: TrueMetric) -> tuple:
  """Features of n new items: a tuple of p float64 arrays [n, d], x ~ N(0, I_d)."""
  if n < 1:
    raise ValueError(f"n must be >= 1, got {n}")
  return tuple(rng.standard_normal((n, s.dim)) for s in metric.specs)


def _weights(metric: TrueMetric, w: Optional[EnsembleWeights]) -> EnsembleWeights:
  return metric.w if w is None else w


def true_channel_distances(metric: TrueMetric, inputs_a: Sequence[np.ndarray],
                           inputs_b: Optional[Sequence[np.ndarray]] = None) -> np.ndarray:
  """D*_i(a, b) = ‖F*_i(a) − F*_i(b)‖² (Eq. 1, Λ = I): float64 [na, nb, p].

  `inputs_b=None` gives the exactly symmetric all-pairs block of `inputs_a`.
  """
  emb_a = embed(metric.towers, inputs_a)
  emb_b = None if inputs_b is None else embed(metric.towers, inputs_b)
  return np.asarray(channel_distances(emb_a, emb_b), np.float64)


def true_distance(metric: TrueMetric, inputs_a: Sequence[np.ndarray],
                  inputs_b: Optional[Sequence[np.ndarray]] = None, *,
                  w: Optional[EnsembleWeights] = None) -> np.ndarray:
  """D*(a, b) = sigmoid(Σ_i h*_i D*_i(a, b) + b*) (Eq. 7): float64 [na, nb].

  Args:
    metric: the truth.
    inputs_a, inputs_b: item features (tuples of [n, d]); `inputs_b=None`: a vs a.
    w: optional w*_u replacing the metric's w* (a user's truth).
  """
  d = true_channel_distances(metric, inputs_a, inputs_b)
  w = _weights(metric, w)
  return np.asarray(ensemble_distance(w, jnp.asarray(d, w.h.dtype)), np.float64)


def true_kernel(metric: TrueMetric, inputs_a: Sequence[np.ndarray],
                inputs_b: Optional[Sequence[np.ndarray]] = None, *,
                w: Optional[EnsembleWeights] = None) -> np.ndarray:
  """K*(a, b) = exp(−D*(a, b)/2) (Eq. 5): float64 [na, nb]."""
  d = true_distance(metric, inputs_a, inputs_b, w=w)
  return np.asarray(kernel_from_distance(d), np.float64)


class RatingDraw(NamedTuple):
  """Ratings drawn from N(0, K* + σ²I) and what they were drawn from.

  Attributes:
    y: float64 [n] (or [num_draws, n]) ratings.
    k: float64 [n, n] K* of the items.
    lambda_min: λ_min(K*), the smallest eigenvalue (negative: K* is indefinite).
  """
  y: np.ndarray
  k: np.ndarray
  lambda_min: float


def sample_ratings(rng: np.random.Generator, metric: TrueMetric,
                   inputs: Sequence[np.ndarray], *, w: Optional[EnsembleWeights] = None,
                   num_draws: Optional[int] = None, min_margin: float = 0.5) -> RatingDraw:
  """Ratings r ~ N(0, K* + σ²I) of the items `inputs` (exact, via a Cholesky factor).

  r = L z with K* + σ²I = L Lᵀ and z ~ N(0, I_n), in float64.

  Args:
    rng: numpy generator (the only source of randomness).
    metric: the truth (towers, w*, σ²).
    inputs: tuple of p arrays [n, d], the items.
    w: optional w*_u replacing w* (a user's ratings).
    num_draws: None for one draw y [n]; else y [num_draws, n] of independent draws.
    min_margin: refuse unless λ_min(K*) + σ² ≥ min_margin · σ².

  Raises:
    ValueError: K* + σ²I is not positive definite with the margin; the message gives
      λ_min(K*) and what to change.
  """
  k = true_kernel(metric, inputs, w=w)  # K* [n, n], exactly symmetric
  n = k.shape[0]
  lam_min = float(np.linalg.eigvalsh(k)[0])  # λ_min(K*)
  s2 = metric.noise_var
  if lam_min + s2 < min_margin * s2:
    raise ValueError(
        f"K* + σ²I is not safely positive definite on these {n} items: λ_min(K*) = "
        f"{lam_min:.3g}, σ² = {s2:.3g} (need λ_min + σ² ≥ {min_margin}·σ²). The kernel "
        "exp(-sigmoid(·)/2) is indefinite and |λ_min| grows with n; raise b* or σ², or "
        "use fewer items")
  chol = np.linalg.cholesky(k + s2 * np.eye(n))  # K* + σ²I = L Lᵀ
  shape = (n,) if num_draws is None else (num_draws, n)
  z = rng.standard_normal(shape)  # z ~ N(0, I_n)
  y = z @ chol.T  # r = L z (row-wise)
  return RatingDraw(y=y, k=k, lambda_min=lam_min)


class SyntheticData(NamedTuple):
  """n items with one rating each, drawn from the truth.

  Attributes:
    inputs: tuple of p float64 arrays [n, d] (tower inputs, channel order).
    y: float64 [n], one draw of r ~ N(0, K* + σ²I).
    lambda_min: λ_min(K*) on these items.
  """
  inputs: tuple
  y: np.ndarray
  lambda_min: float


def make_dataset(rng: np.random.Generator, metric: TrueMetric, n: int, *,
                 w: Optional[EnsembleWeights] = None,
                 min_margin: float = 0.5) -> SyntheticData:
  """n fresh items and one rating draw (`sample_items` then `sample_ratings`)."""
  inputs = sample_items(rng, n, metric)
  draw = sample_ratings(rng, metric, inputs, w=w, min_margin=min_margin)
  return SyntheticData(inputs=inputs, y=draw.y, lambda_min=draw.lambda_min)


def sample_user_weights(rng: np.random.Generator, metric: TrueMetric, *, num_users: int,
                        h_spread: float = 0.5, b_spread: float = 0.1) -> EnsembleWeights:
  """Per-user truths w*_u = (h* ⊙ exp(s_h g_u), b* + s_b e_u), g_u ~ N(0, I_p), e_u ~ N(0, 1).

  h*_u stays non-negative (a log-normal factor per channel around h*).

  Returns:
    EnsembleWeights with h [num_users, p] and b [num_users] (row u = user u).
  """
  p = metric.num_channels
  h0 = np.asarray(metric.w.h, np.float64)
  b0 = float(metric.w.b)
  g = rng.standard_normal((num_users, p))
  e = rng.standard_normal(num_users)
  dt = metric.w.h.dtype
  return EnsembleWeights(h=jnp.asarray(h0 * np.exp(h_spread * g), dt),
                         b=jnp.asarray(b0 + b_spread * e, dt))


def user_weights(ws: EnsembleWeights, u: int) -> EnsembleWeights:
  """Row u of stacked per-user weights (h [U, p], b [U]) as one EnsembleWeights."""
  return EnsembleWeights(h=ws.h[u], b=ws.b[u])
