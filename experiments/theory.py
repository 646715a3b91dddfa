"""Runs the theory check: recovery of a known metric D* by the GP likelihood vs n.

  python -m experiments.theory --config=experiments/configs/theory.py --workdir=runs/theory
  python -m experiments.theory --config=experiments/configs/theory.py:quick \
      --workdir=/tmp/theory_quick

Writes theory.json, theory.csv, theory.png, personal_recovery.csv/png under --workdir;
re-running with the same --workdir resumes. See docs/theory.md.
"""

import os

os.environ.setdefault("PJRT_NPROC", "1")  # avoids an XLA:CPU thread-pool deadlock

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
import jax  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from sslmetric.experiment import theory  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Theory-check config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where results go.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  config = _CONFIG.value
  if config.dtype == "float64":
    jax.config.update("jax_enable_x64", True)
  theory.run(config, _WORKDIR.value, log=lambda s: print(s, flush=True))


if __name__ == "__main__":
  app.run(main)
