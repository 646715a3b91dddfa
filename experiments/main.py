"""Runs the sslmetric experiment for a config: every method, every seed, results contract.

  python -m experiments.main --config=experiments/configs/movielens_100k.py \
      --workdir=runs/ml100k
  python -m experiments.main --config=experiments/configs/movielens_100k.py:quick \
      --workdir=/tmp/quick --config.ssl.num_steps=50

Re-running with the same --workdir resumes a killed run.
"""

import sslmetric  # noqa: F401  (sets safe CPU threading before jax starts)

from absl import app

from experiments import _cli
from sslmetric.experiment import pipeline

if __name__ == "__main__":
  app.run(_cli.main_for(pipeline.run))
