"""The ensemble distance (Eq. 7) and the kernel (Eq. 5).

w = (h, b) is the only user-dependent part of the metric: given per-channel distances
D_i(a, b) (Eq. 1) stacked as `d_channels[..., i]`, the ensemble distance is

    D(a, b) = sigmoid(Σ_i h_i D_i(a, b) + b),          (Eq. 7)

and the GP kernel is k(a, b) = exp(-D(a, b) / 2).       (Eq. 5)
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp


class EnsembleWeights(NamedTuple):
  """w = (h, b): per-channel weights h [p] and a bias b [] (both float)."""
  h: jax.Array  # [p]
  b: jax.Array  # []


def init_ensemble_weights(num_channels: int, *, h0: float = 1.0, b0: float = 0.0,
                          dtype=jnp.float32) -> EnsembleWeights:
  return EnsembleWeights(h=jnp.full((num_channels,), h0, dtype),
                         b=jnp.asarray(b0, dtype))


def ensemble_logit(w: EnsembleWeights, d_channels: jax.Array) -> jax.Array:
  """s = Σ_i h_i D_i + b, the pre-sigmoid ensemble distance, for `d_channels` [..., p].

  Rank by s, not by D = sigmoid(s): same order, but sigmoid saturates to exactly 1 in
  float32 for far items and would turn real differences into ties.
  """
  # An elementwise sum rather than `@`: a float32 matmul may run in TF32 on GPUs.
  return jnp.sum(d_channels * w.h, axis=-1) + w.b


def ensemble_distance(w: EnsembleWeights, d_channels: jax.Array) -> jax.Array:
  """D = sigmoid(Σ_i h_i D_i + b) for per-channel distances `d_channels` [..., p]."""
  return jax.nn.sigmoid(ensemble_logit(w, d_channels))


def kernel_from_distance(d: jax.Array) -> jax.Array:
  """k = exp(-D / 2); with D in (0, 1), k lies in (exp(-1/2), 1)."""
  return jnp.exp(-0.5 * d)
