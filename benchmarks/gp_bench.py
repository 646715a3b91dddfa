"""Benchmark: GP negative log marginal likelihood + gradient, sslmetric vs GPJax.

Times `value_and_grad` of
  * the exact GP NLL (Eq. 6) at n ∈ {500, 1682, 4000}, and
  * the sparse GP objective (Titsias' collapsed bound, App. G) at
    n ∈ {1682, 26744, 160000}, m ∈ {64, 256},
with d = 50 inputs, in float32 and float64, for sslmetric (`gp.exact_nll`;
`sparse_gp.blocked_sparse_stats` + `sparse_nll_from_stats(titsias=True)`, the path of
`gp.model_nll`) and for GPJax (`objectives.conjugate_mll`, `objectives.collapsed_elbo`),
in the same process on the same data. Gradients are taken with respect to the kernel
parameters, the noise and the n×50 inputs X (which the towers would produce; the
supporting set is X[idx], as in sslmetric). GPJax differentiates its own parameters
(RBF lengthscale/variance, noise, inducing inputs Z) and X.

The two kernels differ (sslmetric: exp(-sigmoid(h‖a-b‖² + b)/2); GPJax: RBF), so
the losses differ; the linear algebra (n×m cross-covariance, m×m Cholesky, Woodbury)
is the same. Columns: median seconds over the repeats (after a compile call), the
ratio GPJax / ours, and for n = 160,000, m = 256 the process peak RSS (VmHWM, reset
before each method) and XLA's temp-buffer size for the compiled step.

Command (GPJax lives in its own venv so the project's venv is untouched):

    python3 -m venv /tmp/gpjaxvenv && /tmp/gpjaxvenv/bin/pip install gpjax
    cd /work/main && PJRT_NPROC=1 PYTHONPATH=/work/main taskset -c 1 \\
        /tmp/gpjaxvenv/bin/python benchmarks/gp_bench.py

`--quick` runs tiny sizes (a smoke test); `--no-gpjax` runs ours only (the project venv
suffices then).

Recorded run (2-core shared CPU container, pinned to one core, other jobs running, so
timings carry ~±30% noise; total 570 s):

  cross-check vs GPJax on the same RBF matrices (n=300, m=20, f64): relative
  difference 4.3e-16 (Titsias bound), 2.1e-16 (exact NLL)
  | GP     |       n |    m | dtype   |    ours s |   GPJax s | GPJax/ours |
  | exact  |     500 |    - | float32 |   0.0110  |   0.1197  |      10.89 |
  | exact  |     500 |    - | float64 |   0.0280  |   0.2091  |       7.47 |
  | exact  |    1682 |    - | float32 |   0.3064  |   1.3483  |       4.40 |
  | exact  |    1682 |    - | float64 |   0.7373  |   3.3967  |       4.61 |
  | exact  |    4000 |    - | float32 |   8.8709  |  40.4703† |       4.56 |
  | exact  |    4000 |    - | float64 |   7.9371  |  52.1393† |       6.57 |
  | sparse |    1682 |   64 | float32 |   0.0026  |   0.0132  |       5.13 |
  | sparse |    1682 |   64 | float64 |   0.0049  |   0.0527  |      10.86 |
  | sparse |    1682 |  256 | float32 |   0.0279  |   0.2642  |       9.46 |
  | sparse |    1682 |  256 | float64 |   0.0441  |   0.2541  |       5.76 |
  | sparse |   26744 |   64 | float32 |   0.0391  |   0.5645  |      14.43 |
  | sparse |   26744 |   64 | float64 |   0.1062  |   1.0918  |      10.28 |
  | sparse |   26744 |  256 | float32 |   0.2820  |   2.8009  |       9.93 |
  | sparse |   26744 |  256 | float64 |   0.6877  |   7.9616  |      11.58 |
  | sparse |  160000 |   64 | float32 |   0.3078  |   6.0171  |      19.55 |
  | sparse |  160000 |   64 | float64 |   0.8422  |  30.6049† |      36.34 |
  | sparse |  160000 |  256 | float32 |   1.7628  |  68.6109† |      38.92 |
  | sparse |  160000 |  256 | float64 |   8.5281  |       n/a |        n/a |
  n = 160,000, m = 256: peak RSS ours 1.10 GB (f32) / 1.31 GB (f64), XLA temp buffers
  0.09 / 0.19 GB; GPJax 17.06 GB (f32; XLA temp 8.43 GB: its vmapped RBF holds an
  n×m×d array under grad); GPJax f64 skipped (16.5 GB temp > the 9 GB budget given).
"""

import argparse
import gc
import os
import platform
import statistics
import time
import warnings

os.environ.setdefault("PJRT_NPROC", "1")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from sslmetric.model import distance, gp, sparse_gp  # noqa: E402
from sslmetric.model.ensemble import EnsembleWeights  # noqa: E402

D = 50
EXACT_N = (500, 1682, 4000)
SPARSE_N = (1682, 26744, 160000)
SPARSE_M = (64, 256)
PEAK_CASE = (160000, 256)
NOISE_VAR = 0.3


REPEAT_BUDGET_S = 30.0  # per method and case, after the first (compiling) call


def _repeats(first_s):
  """As many timed calls (≤ 5) as fit in REPEAT_BUDGET_S; 0 if one call exceeds it."""
  return min(5, int(REPEAT_BUDGET_S // max(first_s, 1e-9)))


def _peak_reset():
  """Resets the kernel's peak-RSS mark (VmHWM); False where not permitted."""
  try:
    with open("/proc/self/clear_refs", "w") as f:
      f.write("5")
    return True
  except OSError:
    return False


def _peak_rss_gb():
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmHWM:"):
        return int(line.split()[1]) / 2**20
  return float("nan")


def _data(n, m, dtype, seed=0):
  rng = np.random.default_rng(seed)
  x = np.tanh(rng.normal(size=(n, D)))  # like tower outputs, in (-1, 1)
  y = np.sin(x[:, :3].sum(1)) + 0.3 * rng.normal(size=n)
  idx = np.sort(rng.choice(n, size=m, replace=False)) if m else None
  return jnp.asarray(x, dtype), jnp.asarray(y - y.mean(), dtype), idx


def _time(fn, args):
  """(median seconds, number of timed calls, loss). With 0 timed calls (one call longer
  than the budget) the first call's time is reported; it includes compilation, which at
  those sizes is a few per cent of the run."""
  t0 = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  first = time.perf_counter() - t0
  times = []
  for _ in range(_repeats(first)):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  loss = float(out[0])
  return (statistics.median(times) if times else first), len(times), loss


def _temp_gb(fn, args):
  try:
    mem = fn.lower(*args).compile().memory_analysis()
    return mem.temp_size_in_bytes / 2**30
  except Exception:  # noqa: BLE001  (not every backend reports it)
    return float("nan")


# ----------------------------------------------------------------------------- ours
def _ours_fn(n, m, dtype, block_size):
  w = EnsembleWeights(h=jnp.asarray([1.0 / D], dtype), b=jnp.asarray(0.5, dtype))
  theta = (w, gp.noise_raw(NOISE_VAR, dtype=dtype))

  if m == 0:
    def loss(th, x, y):
      w, raw = th
      k = distance.kernel_matrix(w, (x,))  # K_nn
      return gp.exact_nll(k=k, y=y, noise_var=gp.noise_variance(raw))
  else:
    def loss(th, x, y, idx):
      w, raw = th
      z = (x[idx],)  # supporting items: a subset of the training items
      stats = sparse_gp.blocked_sparse_stats(
          k_mm=distance.kernel_matrix(w, z),
          k_rows=lambda e: distance.kernel_matrix(w, e, z), xs=(x,), y=y,
          k_diag=distance.kernel_diag(w, x.shape[0]), block_size=block_size)
      return sparse_gp.sparse_nll_from_stats(stats, gp.noise_variance(raw), titsias=True)

  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1))), theta


# ---------------------------------------------------------------------------- GPJax
def _gpjax_fn(n, m, dtype, x, idx):
  import equinox as eqx
  import gpjax as gpx

  kernel = gpx.kernels.RBF(lengthscale=jnp.sqrt(D / 2.0), variance=1.0)
  post = (gpx.gps.Prior(mean_function=gpx.mean_functions.Zero(), kernel=kernel)
          * gpx.likelihoods.Gaussian(obs_stddev=np.sqrt(NOISE_VAR)))
  if m == 0:
    model = post
    objective = lambda mdl, data: -gpx.objectives.conjugate_mll(mdl, data)
  else:
    model = gpx.variational_families.CollapsedVariationalGaussian(
        model=post, inducing_inputs=x[idx])
    objective = lambda mdl, data: -gpx.objectives.collapsed_elbo(mdl, data)
  params, static = eqx.partition(model, eqx.is_inexact_array)
  params = jax.tree_util.tree_map(lambda a: a.astype(dtype), params)

  def loss(p, x, y):
    return objective(eqx.combine(p, static), gpx.Dataset(X=x, y=y[:, None]))

  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1))), params


def _gpjax_version():
  try:
    import gpjax
    return gpjax.__version__
  except ImportError as e:
    return f"unavailable ({e})"


def cross_check(n=300, m=20, seed=1):
  """Ours on GPJax's own RBF matrices vs GPJax (float64): -collapsed_elbo, -conjugate_mll.

  GPJax factorises K_zz + 1e-6·I; ours adds 1e-10·mean(diag) itself, so K_zz is passed
  with the difference added and both factorise the same matrix: agreement to rounding.
  """
  import gpjax as gpx
  x, y, idx = _data(n, m, jnp.float64, seed)
  kernel = gpx.kernels.RBF(lengthscale=jnp.sqrt(D / 2.0), variance=1.0)
  post = (gpx.gps.Prior(mean_function=gpx.mean_functions.Zero(), kernel=kernel)
          * gpx.likelihoods.Gaussian(obs_stddev=np.sqrt(NOISE_VAR)))
  q = gpx.variational_families.CollapsedVariationalGaussian(model=post, inducing_inputs=x[idx])
  theirs = -float(gpx.objectives.collapsed_elbo(q, gpx.Dataset(X=x, y=y[:, None])))
  z = x[idx]
  a = (post.prior.jitter - 1e-10) / (1.0 + 1e-10)  # a + 1e-10·(1 + a) = GPJax's jitter
  ours = float(sparse_gp.sparse_nll(
      k_nm=kernel.cross_covariance(x, z), k_mm=kernel.gram(z).as_matrix() + a * jnp.eye(m),
      k_diag=jnp.ones(n), y=y, noise_var=NOISE_VAR, titsias=True))
  data = gpx.Dataset(X=x, y=y[:, None])
  theirs_exact = -float(gpx.objectives.conjugate_mll(post, data))
  ours_exact = float(gp.exact_nll(k=kernel.gram(x).as_matrix() + a * jnp.eye(n), y=y,
                                  noise_var=NOISE_VAR))
  return (abs(ours - theirs) / abs(theirs),
          abs(ours_exact - theirs_exact) / abs(theirs_exact))


def run(cases, *, with_gpjax, block_size, mem_budget_gb):
  rows = []
  for kind, n, m in cases:
    for dtype in (jnp.float32, jnp.float64):
      x, y, idx = _data(n, m, dtype)
      row = {"kind": kind, "n": n, "m": m or "-", "dtype": jnp.dtype(dtype).name}
      peak = (n, m) == PEAK_CASE
      # Ours.
      fn, theta = _ours_fn(n, m, dtype, block_size)
      args = (theta, x, y) if m == 0 else (theta, x, y, jnp.asarray(idx))
      if peak:
        row["ours_temp_gb"] = _temp_gb(fn, args)
        row["peak_reset"] = _peak_reset()
      row["ours_s"], row["ours_reps"], row["ours_loss"] = _time(fn, args)
      if peak:
        row["ours_peak_gb"] = _peak_rss_gb()
      del fn, args
      gc.collect()
      # GPJax, same data.
      if with_gpjax:
        try:
          gfn, gparams = _gpjax_fn(n, m, dtype, x, idx)
          gargs = (gparams, x, y)
          temp = _temp_gb(gfn, gargs)
          if peak:
            row["gpjax_temp_gb"] = temp
          if temp == temp and temp > mem_budget_gb:
            row["gpjax_note"] = f"skipped: needs {temp:.1f} GB temp > {mem_budget_gb} GB"
          else:
            if peak:
              _peak_reset()
            row["gpjax_s"], row["gpjax_reps"], row["gpjax_loss"] = _time(gfn, gargs)
            if peak:
              row["gpjax_peak_gb"] = _peak_rss_gb()
          del gfn, gargs
        except Exception as e:  # noqa: BLE001  (API drift: say so in the table)
          row["gpjax_note"] = f"failed: {type(e).__name__}: {str(e)[:80]}"
      gc.collect()
      rows.append(row)
      _print_row(row)
  return rows


HEADER = (f"| {'GP':6} | {'n':>7} | {'m':>4} | {'dtype':7} | {'ours s':>9} | "
          f"{'GPJax s':>9} | {'GPJax/ours':>10} | notes")


def _fmt(v, spec):
  return format(v, spec) if isinstance(v, float) and v == v else "n/a"


def _print_row(r):
  ratio = r["gpjax_s"] / r["ours_s"] if "gpjax_s" in r else float("nan")
  notes = []
  if not np.isfinite(r["ours_loss"]):
    notes.append("ours loss non-finite")
  if "gpjax_loss" in r and not np.isfinite(r["gpjax_loss"]):
    notes.append("GPJax loss non-finite")
  if "ours_peak_gb" in r:
    notes.append(f"peak RSS ours {r['ours_peak_gb']:.2f} GB (XLA temp "
                 f"{_fmt(r['ours_temp_gb'], '.2f')} GB)")
  if "gpjax_peak_gb" in r:
    notes.append(f"GPJax {r['gpjax_peak_gb']:.2f} GB (XLA temp "
                 f"{_fmt(r['gpjax_temp_gb'], '.2f')} GB)")
  if "gpjax_note" in r:
    notes.append("GPJax " + r["gpjax_note"])
  if r.get("peak_reset") is False:
    notes.append("VmHWM not resettable: peak is process-wide")
  def secs(key):
    if key + "_s" not in r:
      return "n/a"
    return _fmt(r[key + "_s"], "8.4f") + ("†" if r[key + "_reps"] == 0 else " ")

  print(f"| {r['kind']:6} | {r['n']:>7} | {str(r['m']):>4} | {r['dtype']:7} | "
        f"{secs('ours'):>9} | {secs('gpjax'):>9} | {_fmt(ratio, '10.2f'):>10} | "
        f"{'; '.join(notes)}", flush=True)


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
  ap.add_argument("--no-gpjax", action="store_true", help="ours only")
  ap.add_argument("--block-size", type=int, default=4096, help="sparse row block")
  ap.add_argument("--mem-budget-gb", type=float, default=12.0,
                  help="skip a GPJax case whose XLA temp buffers exceed this")
  args = ap.parse_args()
  if args.quick:
    cases = [("exact", 200, 0), ("sparse", 3000, 32)]
  else:
    cases = ([("exact", n, 0) for n in EXACT_N]
             + [("sparse", n, m) for n in SPARSE_N for m in SPARSE_M])
  print(f"# jax {jax.__version__} on {jax.devices()[0].platform} "
        f"({platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} "
        f"CPU(s) usable), GPJax {_gpjax_version() if not args.no_gpjax else 'not run'}; "
        f"d = {D}; value_and_grad; median of up to 5 calls after a compiling one, as many "
        f"as fit in {REPEAT_BUDGET_S:.0f} s († = that single first call, compile "
        f"included); sparse = Titsias collapsed bound, block {args.block_size}", flush=True)
  if not args.no_gpjax:
    warnings.filterwarnings("ignore", message=".*is not of type float64.*")
    try:
      rel_sparse, rel_exact = cross_check()
      print(f"# cross-check vs GPJax on the same RBF matrices (n=300, m=20, f64): relative "
            f"difference {rel_sparse:.1e} (Titsias bound), {rel_exact:.1e} (exact NLL)",
            flush=True)
    except Exception as e:  # noqa: BLE001
      print(f"# cross-check failed: {type(e).__name__}: {e}", flush=True)
  print(HEADER)
  print("|" + "|".join("-" * len(c) for c in HEADER.split("|")[1:]))
  t0 = time.perf_counter()
  run(cases, with_gpjax=not args.no_gpjax, block_size=args.block_size,
      mem_budget_gb=args.mem_budget_gb)
  print(f"# total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
  main()
