"""Runs the personal protocol (paper Q2): meta-learned, per-user metrics vs the base SSL metric.

  python -m experiments.personal --config=experiments/configs/movielens_100k.py \
      --workdir=runs/ml100k
  python -m experiments.personal --config=experiments/configs/movielens_100k.py:quick \
      --workdir=/tmp/quick --config.ssl.num_steps=50

Use the main experiment's --workdir to reuse its SSL model (trained here if absent).
"""

import sslmetric  # noqa: F401  (sets safe XLA:CPU threading before jax starts)

import jax
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from sslmetric.experiment import personal

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where results and checkpoints go.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  # Per-user GPs in float64: their kernels are not PSD in general, and float32 round-off
  # on top of that made Σ_u indefinite. (The SSL model itself stays in config.dtype.)
  jax.config.update("jax_enable_x64", True)
  personal.run(_CONFIG.value, _WORKDIR.value, log=lambda s: print(s, flush=True))


if __name__ == "__main__":
  app.run(main)
