"""Scaling the meta-gradient across devices: the user batch sharded over a 1-D mesh.

Users are independent given w, so the batch axis of :class:`UserData` is split over a
`jax.sharding.Mesh(devices, ("users",))`; each device runs the per-user code on its
users (:func:`sslmetric.personalize.meta.per_user_meta_grads`) and the weighted sums
of losses and gradients are all-reduced (`psum`) — the same mean as on one device.

The batch is padded to a multiple of the device count with all-padding users (mask all
False), which have ℓ_u ≡ 0 and weight 0 in the mean, so padding changes nothing.
"""

from __future__ import annotations

import functools
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from sslmetric.model.ensemble import EnsembleWeights
from sslmetric.personalize.meta import per_user_meta_grads
from sslmetric.personalize.objective import UserData

USER_AXIS = "users"


def user_mesh(devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
  """A 1-D mesh over `devices` (default: all) with the single axis "users"."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (USER_AXIS,))


def pad_user_batch(users: UserData, multiple: int) -> UserData:
  """Appends all-padding users so the batch size is a multiple of `multiple`.

  Args:
    users: a batch [B, ...].
    multiple: e.g. the number of devices.

  Returns:
    A batch [B', ...], B' = ⌈B / multiple⌉·multiple; added users have d = 0, y = 0 and
    mask all False, hence ℓ_u ≡ 0 and weight 0 in the meta-objective's mean.
  """
  b = users.y.shape[0]
  extra = -b % multiple
  if extra == 0:
    return users
  pad = lambda x: jnp.concatenate([x, jnp.zeros((extra,) + x.shape[1:], x.dtype)])
  return UserData(d=pad(users.d), y=pad(users.y), mask=pad(users.mask))


def shard_users(users: UserData, mesh: Mesh) -> UserData:
  """Pads the batch to a multiple of the mesh size and places it user-axis-sharded.

  Each device holds B' / |devices| whole users (their [p, n, n] distances included).
  """
  users = pad_user_batch(users, mesh.size)
  return jax.device_put(users, NamedSharding(mesh, P(USER_AXIS)))


def sharded_meta_grad(w: EnsembleWeights, users: UserData, *, mesh: Mesh,
                      mode: str = "exact", steps: int, step_size, noise_var,
                      jitter: Optional[float] = None, objective: str = "hand",
                      chunk_size: Optional[int] = None):
  """:func:`sslmetric.personalize.meta.meta_grad` with the users split over `mesh`.

  Same arguments and result as `meta_grad` (usable as its `grad_fn` replacement in
  `make_meta_step` via `functools.partial(sharded_meta_grad, mesh=mesh)`). The batch
  size must be a multiple of the mesh size (:func:`shard_users` pads it).

  Per device: Σ_u a_u ℓ_u(κ_u(w)), Σ_u a_u ∇_u and Σ_u a_u over its users (a_u = 1 for
  a real user, 0 for padding); then one `psum` over "users" and a division.
  """
  kwargs = dict(mode=mode, steps=steps, step_size=step_size, noise_var=noise_var,
                jitter=jitter, objective=objective, chunk_size=chunk_size)

  def local(w, users):
    # w arrives replicated; the inner loop's carry mixes it with this device's users,
    # so mark it device-varying up front (shard_map's replication typing).
    w = jax.lax.pcast(w, (USER_AXIS,), to="varying")
    losses, grads = per_user_meta_grads(w, users, **kwargs)
    wts = jnp.any(users.mask, axis=-1).astype(losses.dtype)  # a_u: [B_local]
    sums = (jnp.sum(losses * wts),
            jax.tree.map(lambda g: jnp.tensordot(wts, g, axes=1), grads),
            jnp.sum(wts))
    return jax.lax.psum(sums, USER_AXIS)

  loss_sum, grad_sum, count = jax.shard_map(
      local, mesh=mesh, in_specs=(P(), P(USER_AXIS)), out_specs=P())(w, users)
  count = jnp.maximum(count, 1)
  return loss_sum / count, jax.tree.map(lambda g: g / count, grad_sum)


def make_sharded_grad_fn(mesh: Mesh):
  """`partial(sharded_meta_grad, mesh=mesh)`: a `grad_fn` for meta-training."""
  return functools.partial(sharded_meta_grad, mesh=mesh)
