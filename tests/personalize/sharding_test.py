"""Tests for sslmetric.personalize.sharding: the user batch over a device mesh."""

import functools

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslmetric.model.ensemble import EnsembleWeights
from sslmetric.personalize.testing import random_users
from sslmetric.personalize import meta
from sslmetric.personalize import objective as obj
from sslmetric.personalize import sharding

REPO = pathlib.Path(__file__).resolve().parents[2]
KW = dict(steps=2, step_size=0.05, noise_var=0.5)


_users = functools.partial(random_users, num_users=5, n_pad=8, p=3)


def test_pad_user_batch_adds_empty_users_that_change_nothing():
  users, w = _users(0)
  padded = sharding.pad_user_batch(users, 3)
  chex.assert_shape(padded.d, (6,) + users.d.shape[1:])
  assert not np.any(padded.mask[5]) and np.all(padded.y[5] == 0)
  assert sharding.pad_user_batch(users, 5) is users
  grad = jax.jit(lambda w, u: meta.meta_grad(w, u, **KW))
  chex.assert_trees_all_close(grad(w, padded), grad(w, users), rtol=1e-12)


def test_sharded_meta_grad_on_a_one_device_mesh_equals_meta_grad():
  users, w = _users(1)
  mesh = sharding.user_mesh(jax.devices()[:1])
  got = jax.jit(lambda w, u: sharding.sharded_meta_grad(w, u, mesh=mesh, **KW))(
      w, sharding.shard_users(users, mesh))
  want = jax.jit(lambda w, u: meta.meta_grad(w, u, **KW))(w, users)
  chex.assert_trees_all_close(got, want, rtol=1e-12, atol=1e-14)


_FOUR_DEVICE_SCRIPT = textwrap.dedent("""
    import json
    import jax, jax.numpy as jnp, numpy as np, optax
    jax.config.update("jax_enable_x64", True)
    from sslmetric.model.ensemble import EnsembleWeights
    from sslmetric.personalize import meta, objective as obj, sharding

    assert jax.device_count() == 4, jax.devices()
    rng = np.random.default_rng(0)
    emb = [jnp.asarray(rng.normal(size=(40, 4)) / 3) for _ in range(3)]
    lens = rng.integers(4, 9, 6)  # 6 users: padded to 8, two per device
    items = [rng.choice(40, n, replace=False) for n in lens]
    ratings = [rng.integers(1, 6, n).astype(np.float64) for n in lens]
    users = obj.make_user_data(emb, *obj.pad_users(items, ratings, n_pad=8))
    w = EnsembleWeights(h=jnp.asarray(rng.uniform(0.1, 0.5, 3)), b=jnp.asarray(-0.2))
    kw = dict(steps=2, step_size=0.05, noise_var=0.5)

    ref = jax.jit(lambda w, u: meta.meta_grad(w, u, **kw))(w, users)
    mesh = sharding.user_mesh()
    sharded = sharding.shard_users(users, mesh)
    shard_rows = sorted(s.data.shape[0] for s in sharded.d.addressable_shards)
    got = jax.jit(lambda w, u: sharding.sharded_meta_grad(w, u, mesh=mesh, **kw))(
        w, sharded)
    gspmd = jax.jit(lambda w, u: meta.meta_loss(w, u, **kw))(w, sharded)
    opt = optax.adam(0.01)
    train = lambda grad_fn: meta.meta_train(w, [users] * 3, optimizer=opt,
                                            num_steps=3, grad_fn=grad_fn, **kw)[0].w
    w_one = train(None)
    w_four = meta.meta_train(w, [sharded] * 3, optimizer=opt, num_steps=3,
                             grad_fn=sharding.make_sharded_grad_fn(mesh), **kw)[0].w
    diff = lambda a, b: max(float(jnp.max(jnp.abs(x - y)))
                            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    print(json.dumps({
        "devices": len(sharded.d.sharding.device_set), "shard_rows": shard_rows,
        "grad_diff": diff(ref, got), "gspmd_loss_diff": abs(float(gspmd - ref[0])),
        "train_diff": diff(w_one, w_four), "loss": float(ref[0])}))
""")


def test_four_forced_cpu_devices_match_single_device():
  """The user batch over 4 forced CPU devices gives the single-device numbers.

  Runs in a subprocess: XLA_FLAGS must be set before jax starts, and this session's
  jax already has. A freeze fails the test at the timeout instead of hanging CI.
  """
  env = dict(os.environ)
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                      " --xla_force_host_platform_device_count=4").strip()
  env["PJRT_NPROC"] = "1"
  env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
  try:
    proc = subprocess.run([sys.executable, "-c", _FOUR_DEVICE_SCRIPT], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=240,
                          check=False)
  except subprocess.TimeoutExpired:
    pytest.fail("4-device sharding subprocess did not finish in 240 s (a freeze?)")
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  assert out["devices"] == 4
  assert out["shard_rows"] == [2, 2, 2, 2]
  assert np.isfinite(out["loss"])
  assert out["grad_diff"] < 1e-12
  assert out["gspmd_loss_diff"] < 1e-12
  assert out["train_diff"] < 1e-12
