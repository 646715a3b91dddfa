"""Random padded users for tests and benchmarks of the personalisation code."""

import jax.numpy as jnp
import numpy as np

from sslmetric.model.ensemble import EnsembleWeights
from sslmetric.personalize import objective


def random_users(seed: int, *, num_users: int, n_pad: int, p: int = 3,
                 n_items: int = 40) -> tuple:
  """(UserData batch, w): users with 4..n_pad random items, ratings 1..5, p channels."""
  rng = np.random.default_rng(seed)
  emb = [jnp.asarray(rng.normal(size=(n_items, 4)) / 3) for _ in range(p)]
  lens = rng.integers(4, n_pad + 1, num_users)
  items = [rng.choice(n_items, n, replace=False) for n in lens]
  ratings = [rng.integers(1, 6, n).astype(np.float64) for n in lens]
  users = objective.make_user_data(emb, *objective.pad_users(items, ratings, n_pad=n_pad))
  w = EnsembleWeights(h=jnp.asarray(rng.uniform(0.1, 0.5, p)), b=jnp.asarray(-0.2))
  return users, w
