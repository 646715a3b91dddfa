"""Runs the personal protocol (paper Q2): meta-learned, per-user metrics vs the base SSL metric.

  python -m experiments.personal --config=experiments/configs/movielens_100k.py \
      --workdir=runs/ml100k
  python -m experiments.personal --config=experiments/configs/movielens_100k.py:quick \
      --workdir=/tmp/quick --config.ssl.num_steps=50

Use the main experiment's --workdir to reuse its SSL model (trained here if absent).
"""

import sslmetric  # noqa: F401  (sets safe CPU threading before jax starts)

from absl import app

from experiments import _cli
from sslmetric.experiment import personal

if __name__ == "__main__":
  # Per-user GPs in float64: their kernels are not PSD in general, and float32 round-off
  # on top of that made Σ_u indefinite. (The SSL model itself stays in config.dtype.)
  app.run(_cli.main_for(personal.run, x64=lambda config: True))
