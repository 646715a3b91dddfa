"""Runs the theory check: recovery of a known metric D* by the GP likelihood vs n.

  python -m experiments.theory --config=experiments/configs/theory.py --workdir=runs/theory
  python -m experiments.theory --config=experiments/configs/theory.py:quick \
      --workdir=/tmp/theory_quick

Writes theory.json, theory.csv, theory.png, personal_recovery.csv/png under --workdir;
re-running with the same --workdir resumes. See docs/theory.md.
"""

import sslmetric  # noqa: F401  (sets safe CPU threading before jax starts)

from absl import app

from experiments import _cli
from sslmetric.experiment import theory

if __name__ == "__main__":
  app.run(_cli.main_for(theory.run, x64=lambda config: config.dtype == "float64"))
