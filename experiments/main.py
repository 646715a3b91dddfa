"""Runs the sslmetric experiment for a config: every method, every seed, results contract.

  python -m experiments.main --config=experiments/configs/movielens_100k.py \
      --workdir=runs/ml100k
  python -m experiments.main --config=experiments/configs/movielens_100k.py:quick \
      --workdir=/tmp/quick --config.ssl.num_steps=50

Re-running with the same --workdir resumes a killed run.
"""

import sslmetric  # noqa: F401  (sets safe XLA:CPU threading before jax starts)

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from sslmetric.experiment import pipeline

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where results and checkpoints go.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  pipeline.run(_CONFIG.value, _WORKDIR.value, log=lambda s: print(s, flush=True))


if __name__ == "__main__":
  app.run(main)
