"""Time per exact meta-step: vmapped vs a Python loop, against the arithmetic floor.

The meta-step is (L(w), ∇L(w)) for L(w) = mean_u ℓ_u(κ_u(w)) (Eq. 9) with the exact
second-order gradient through t unrolled inner steps, for B users padded to n items
and p channels (issue sizes: B = 64, n = 200, t = 5, p = 5, float64).

Rows (each: compile time, then the min and median of --reps timed steps, wall and
process-CPU time; the machine is shared, so the CPU column is the steadier one):

* "autodiff": ℓ_u in plain JAX, second order by autodiff through Cholesky and
  triangular solves — the configuration the issue measured (before).
* "hand": ℓ_u with hand-derived gradient and Hessian-vector products, the inverse by a
  matmul-only block recursion (sslmetric.personalize.objective) — after.
* layouts: "vmap B" = one `jax.vmap` over the whole batch; "chunk c" = the library's
  batching (meta.per_user_meta_grads: vmap over chunks of c users, chunks in a
  `lax.map`; c = 1 is the CPU default); "loop" = a Python loop over the same jitted
  per-user function, results averaged on the host.

FLOP counting rule (counted for the "hand" algorithm, which is the least work we know
for the exact meta-gradient): matrix products m×k by k×n = 2mkn; Cholesky n³/3;
a triangular solve with k right-hand sides n²k; elementwise and O(n²) work ignored.
Per user: (t + 1) × [SPD inverse by the block recursion] + t × [H v = S (dΣ S): 4n³].
The floor is that count divided by the f64 matmul rate measured in this same run.

Run (≈ 2 minutes at the issue's sizes on 2 cores):
  PJRT_NPROC=1 python benchmarks/meta_step.py
  python benchmarks/meta_step.py --users 8 --n 64 --reps 2   # quick
"""

import argparse
import functools
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from sslmetric._threading import ensure_safe_cpu_threading  # pylint: disable=C0413

ensure_safe_cpu_threading()  # before JAX's backend starts

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp
import numpy as np

from sslmetric.model.ensemble import EnsembleWeights
from sslmetric.personalize import meta
from sslmetric.personalize import objective as obj


def spd_inverse_flops(n: int, leaf: int = 64) -> float:
  """FLOPs of objective.spd_inverse_logdet on an n×n matrix (the counting rule)."""
  if n <= leaf:
    return n**3 / 3 + 2 * n**3  # Cholesky + two triangular solves with n columns
  k, m = n // 2, n - n // 2
  products = 2 * k * k * m + 2 * m * k * m + 2 * k * m * m + 2 * k * m * k
  return products + spd_inverse_flops(k, leaf) + spd_inverse_flops(m, leaf)


def meta_step_flops(users: int, n: int, steps: int) -> float:
  """FLOPs of one exact meta-step with the hand-derived objective (module docstring)."""
  per_user = (steps + 1) * spd_inverse_flops(n) + steps * 4 * n**3
  return users * per_user


def matmul_rate(n: int, dtype, reps: int = 7) -> float:
  """Measured GFLOP/s of one jitted n×n @ n×n product (best of `reps`)."""
  a = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)), dtype)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  best = min(_timed(lambda: f(a).block_until_ready())[0] for _ in range(reps))
  return 2 * n**3 / best / 1e9


def _timed(fn):
  t0, c0 = time.perf_counter(), time.process_time()
  out = fn()
  return time.perf_counter() - t0, time.process_time() - c0, out


def make_problem(*, users: int, n: int, channels: int, dtype, seed: int = 0,
                 n_items: int = 1682, emb_dim: int = 50):
  """Random frozen tower outputs (tanh-like scale) and users with 20..n items."""
  rng = np.random.default_rng(seed)
  emb = [jnp.asarray(rng.normal(size=(n_items, emb_dim)) / np.sqrt(2 * emb_dim), dtype)
         for _ in range(channels)]  # E[D_i] ≈ 1
  lens = rng.integers(min(20, n), n + 1, users)
  items = [rng.choice(n_items, k, replace=False) for k in lens]
  ratings = [rng.integers(1, 6, k).astype(np.float64) for k in lens]
  item_idx, y, mask = obj.pad_users(items, ratings, n_pad=n, dtype=dtype)
  build = jax.jit(lambda e, i, y, m: obj.make_user_data(e, i, y, m))
  compile_s, _, _ = _timed(lambda: jax.block_until_ready(build(emb, item_idx, y, mask)))
  build_s, _, data = _timed(
      lambda: jax.block_until_ready(build(emb, item_idx, y, mask)))
  w = EnsembleWeights(h=jnp.full((channels,), 0.2, dtype), b=jnp.zeros((), dtype))
  return data, w, build_s


def bench_batched(w, users, *, objective, chunk_size, reps, **kw):
  f = jax.jit(functools.partial(meta.meta_grad, mode="exact", objective=objective,
                                chunk_size=chunk_size, **kw))
  compile_s, _, _ = _timed(lambda: f.lower(w, users).compile())
  out = jax.block_until_ready(f(w, users))  # warm-up (fills jit's own cache)
  times = [_timed(lambda: jax.block_until_ready(f(w, users)))[:2] for _ in range(reps)]
  return compile_s, times, out


def bench_loop(w, users, *, objective, reps, **kw):
  f = jax.jit(functools.partial(meta.user_meta_grad, mode="exact", objective=objective,
                                **kw))
  per_user = [jax.tree.map(lambda a, i=i: a[i], users) for i in range(users.y.shape[0])]
  compile_s, _, _ = _timed(lambda: f.lower(w, per_user[0]).compile())

  def step():
    outs = [f(w, u) for u in per_user]  # dispatched asynchronously, one per user
    return jax.block_until_ready(jax.tree.map(lambda *xs: sum(xs) / len(xs), *outs))

  out = step()
  times = [_timed(step)[:2] for _ in range(reps)]
  return compile_s, times, out


def _max_rel_diff(a, b):
  return max(float(jnp.max(jnp.abs(x - y)) / (jnp.max(jnp.abs(y)) + 1e-300))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--users", type=int, default=64)
  parser.add_argument("--n", type=int, default=200, help="items per user (padded)")
  parser.add_argument("--steps", type=int, default=5, help="inner steps t")
  parser.add_argument("--channels", type=int, default=5, help="p")
  parser.add_argument("--reps", type=int, default=3)
  parser.add_argument("--rows", default="autodiff-vmap,autodiff-loop,hand-vmap,"
                      "hand-chunk4,hand-chunk1,hand-loop,hand-chunk1-f32",
                      help="comma-separated subset of the rows")
  parser.add_argument("--json", default="", help="also write the results here")
  args = parser.parse_args(argv)
  jax.config.update("jax_enable_x64", True)
  kw = dict(steps=args.steps, step_size=0.01, noise_var=0.5)

  print(f"jax {jax.__version__}, backend {jax.default_backend()}, "
        f"{os.cpu_count()} CPUs, PJRT_NPROC={os.environ.get('PJRT_NPROC')}, "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
  rate64 = {m: matmul_rate(m, jnp.float64) for m in (args.n, 1000)}
  rate32 = {m: matmul_rate(m, jnp.float32) for m in (args.n, 1000)}
  peak64, peak32 = max(rate64.values()), max(rate32.values())
  print(f"matmul f64: {rate64[args.n]:.1f} GFLOP/s at {args.n}², "
        f"{rate64[1000]:.1f} at 1000²; f32: {rate32[args.n]:.1f} / {rate32[1000]:.1f}")
  flops = meta_step_flops(args.users, args.n, args.steps)
  floor64, floor32 = flops / peak64 / 1e9, flops / peak32 / 1e9
  print(f"work per meta-step: {flops / 1e9:.2f} GFLOP ({args.users} users × "
        f"{flops / args.users / args.n**3:.1f} n³, n = {args.n}, t = {args.steps}); "
        f"floor at the best f64 rate {floor64 * 1e3:.0f} ms "
        f"(f32 {floor32 * 1e3:.0f} ms)")

  data64, w64, build_s = make_problem(users=args.users, n=args.n,
                                      channels=args.channels, dtype=jnp.float64)
  print(f"per-user distance matrices (frozen towers) built once, outside the step: "
        f"{build_s * 1e3:.0f} ms for {args.users} users")
  data32 = jax.tree.map(
      lambda a: a.astype(jnp.float32) if a.dtype == jnp.float64 else a, data64)
  w32 = jax.tree.map(lambda a: a.astype(jnp.float32), w64)

  results, reference = [], None
  header = (f"{'row':18s} {'compile s':>9s} {'step s (min)':>12s} {'median':>8s} "
            f"{'cpu s (min)':>11s} {'× floor':>8s}")
  print(header)
  print("-" * len(header))
  for row in args.rows.split(","):
    parts = row.split("-")
    objective, layout = parts[0], parts[1]
    f32 = len(parts) > 2 and parts[2] == "f32"
    data, w = (data32, w32) if f32 else (data64, w64)
    if layout == "loop":
      compile_s, times, out = bench_loop(w, data, objective=objective, reps=args.reps,
                                         **kw)
    else:
      chunk = args.users if layout == "vmap" else int(layout[len("chunk"):])
      compile_s, times, out = bench_batched(w, data, objective=objective,
                                            chunk_size=chunk, reps=args.reps, **kw)
    wall = sorted(t[0] for t in times)
    cpu = min(t[1] for t in times)
    floor = floor32 if f32 else floor64
    if reference is None and not f32:
      reference = out
    check = ""
    if reference is not None:
      check = f"  (rel. diff vs first row {_max_rel_diff(out, reference):.1e})"
    print(f"{row:18s} {compile_s:9.1f} {wall[0]:12.3f} {wall[len(wall) // 2]:8.3f} "
          f"{cpu:11.3f} {wall[0] / floor:8.1f}{check}", flush=True)
    results.append(dict(row=row, compile_s=compile_s, step_s_min=wall[0],
                        step_s_median=wall[len(wall) // 2], cpu_s_min=cpu,
                        times_floor=wall[0] / floor))
  if args.json:
    with open(args.json, "w") as f:
      json.dump(dict(args=vars(args), gflop=flops / 1e9, matmul_gflops_f64=rate64,
                     matmul_gflops_f32=rate32, floor_s_f64=floor64, floor_s_f32=floor32,
                     build_s=build_s, rows=results), f, indent=1, default=str)


if __name__ == "__main__":
  main()
