"""Theory check (issue 6): recovery of a known metric D* vs n, and of per-user w*_u.

Full grid (8–11 minutes on 2 shared CPU cores; float64, exact GP, n up to 800):
  python -m experiments.theory --config=experiments/configs/theory.py \
      --workdir=runs/theory
Quick variant (smoke test; about 25 s):
  python -m experiments.theory --config=experiments/configs/theory.py:quick \
      --workdir=/tmp/theory_quick
Larger n (exact GP, O(n³) per step; roughly 4× the time per doubling of the largest n):
  python -m experiments.theory --config=experiments/configs/theory.py \
      --workdir=runs/theory_1600 --config.ns='(50,100,200,400,800,1600)'
Re-running with the same --workdir resumes (finished runs are not redone).
"""

import ml_collections


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.dtype = "float64"
  c.data_seed = 0  # data of (n, seed): np.random.default_rng([data_seed, seed, n])
  c.ns = (50, 100, 200, 400, 800)
  c.seeds = (0, 1, 2)
  c.fits = ("w_only", "full", "w_only_plain")
  c.log_every_seconds = 20.0

  # The truth (sslmetric.data.synthetic): D* of the model's own form.
  c.truth = ml_collections.ConfigDict()
  c.truth.seed = 0
  c.truth.num_channels = 2
  c.truth.feature_dim = 3
  c.truth.hidden = 4
  c.truth.h = (4.0, 2.0)
  c.truth.b = 2.0  # K* + σ²I stays positive definite up to n ≈ 2500 (synthetic.py)
  c.truth.noise_var = 0.01

  # Held-out items: D vs D* on all their pairs.
  c.eval = ml_collections.ConfigDict()
  c.eval.seed = 12345
  c.eval.num_items = 200

  # The fitted model: same architecture as the truth (the class contains D*).
  c.model = ml_collections.ConfigDict()
  c.model.hidden = 4
  c.model.h0 = 1.0
  c.model.b0 = 1.0
  c.model.noise_var0 = 0.1

  c.w_only = ml_collections.ConfigDict()
  c.w_only.starts = ((1.0, 1.0), (3.0, 3.0), (8.0, 2.0))  # (h0·1, b0) of each L-BFGS start
  c.w_only.max_iters = 100
  c.w_only.tol = 1e-7

  c.full = ml_collections.ConfigDict()
  c.full.num_steps = 250
  c.full.learning_rate = 1e-2

  # The plain (unshifted) objective with Adam: how often does it end in NaN?
  c.plain = ml_collections.ConfigDict()
  c.plain.ns = (100, 400)
  c.plain.num_steps = 300
  c.plain.learning_rate = 1e-2

  c.personal = ml_collections.ConfigDict()
  c.personal.enabled = True
  c.personal.seed = 7
  c.personal.num_users = 6
  c.personal.ns = (20, 50, 100, 200, 400)
  c.personal.iterations = 2000  # the paper's per-user fit length
  c.personal.step_scale = 0.05  # ω = step_scale / n
  c.personal.lbfgs_iters = 100  # per-user MLE (converged, for comparison); 0: skip it
  c.personal.h_spread = 0.5
  c.personal.b_spread = 0.1

  if arg == "quick":
    c.ns = (30, 60)
    c.seeds = (0,)
    c.eval.num_items = 40
    c.w_only.starts = ((1.0, 1.0),)
    c.w_only.max_iters = 20
    c.full.num_steps = 20
    c.plain.ns = (30,)
    c.plain.num_steps = 20
    c.personal.num_users = 2
    c.personal.ns = (10, 30)
    c.personal.iterations = 50
    c.personal.lbfgs_iters = 0
  elif arg:
    raise ValueError(f"unknown config variant {arg!r}; use '' or 'quick'")
  return c
