"""Contrastive loss of the SIAMESE baseline (Eq. 2).

For a pair with distance D (the ensemble distance, Eq. 7, in (0, 1)) and label y
(0 = similar, 1 = dissimilar), with margin τ:

    ℓ(D, y) = (1 - y)·D + y·max(0, τ - D),

averaged over the (valid) pairs of a batch. Similar pairs are pulled together linearly;
dissimilar pairs are pushed apart until they are τ apart. As D < 1, τ > 1 never lets the
hinge go inactive; τ ≤ 0 makes it vanish.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp


def contrastive_loss(*, d: jax.Array, y: jax.Array, margin: float,
                     mask: Optional[jax.Array] = None) -> jax.Array:
  """Mean over the batch of (1 - y)·D + y·max(0, τ - D) (Eq. 2).

  Args:
    d: [batch] pair distances D.
    y: [batch] labels, 0 similar / 1 dissimilar (any real in [0, 1] interpolates).
    margin: τ.
    mask: optional [batch] bool; False rows are padding: mean = sum / count of valid.

  Returns:
    [] the mean loss (0 when no row is valid).
  """
  y = jnp.asarray(y, d.dtype)
  per_pair = (1.0 - y) * d + y * jax.nn.relu(margin - d)  # Eq. 2
  if mask is None:
    return jnp.mean(per_pair)
  mask = jnp.asarray(mask, bool)
  count = jnp.sum(mask)
  return jnp.sum(jnp.where(mask, per_pair, 0.0)) / jnp.maximum(count, 1)
