"""What every experiment binary shares: --config / --workdir flags and a thin main.

Each binary is `app.run(cli.main_for(library_entry_point))`; the library function
takes (config, workdir, log=...) and does the work.
"""

from typing import Callable, Optional

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_WORKDIR = flags.DEFINE_string("workdir", None,
                               "Where results and checkpoints go (reuse it to resume).")
flags.mark_flags_as_required(["config", "workdir"])


def main_for(run: Callable, *, x64: Optional[Callable] = None) -> Callable:
  """An absl `main` calling `run(config, workdir, log=print)`.

  Args:
    run: the library entry point.
    x64: optional predicate on the config; when true, float64 is switched on first.
  """

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.INFO)
    config = _CONFIG.value
    if x64 is not None and x64(config):
      jax.config.update("jax_enable_x64", True)
    run(config, _WORKDIR.value, log=lambda s: print(s, flush=True))

  return main
