"""Small, atomic checkpoints of pytrees so a killed run resumes where it stopped.

A checkpoint is one msgpack file (flax.serialization) written to a temporary name and
renamed into place, so a kill mid-write leaves the previous checkpoint intact. Restoring
needs a template pytree of the same structure (the freshly initialised state).
"""

import json
import os
import pathlib
from typing import Any, Optional

from flax import serialization
import jax
import numpy as np


def save(path: os.PathLike, tree: Any) -> None:
  """Writes `tree` (arrays, NamedTuples, dicts, ints) to `path` atomically."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  host = jax.tree.map(np.asarray, tree)
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_bytes(serialization.to_bytes(host))
  os.replace(tmp, path)


def restore(path: os.PathLike, template: Any) -> Optional[Any]:
  """The tree saved at `path` shaped like `template`, or None when there is none."""
  path = pathlib.Path(path)
  if not path.exists():
    return None
  try:
    return serialization.from_bytes(template, path.read_bytes())
  except Exception as e:  # corrupt or from another config: say so, do not guess
    raise RuntimeError(
        f"{path}: checkpoint does not match this run's state ({e}). It was written by "
        "another config or version; delete it (or use a fresh --workdir) to start over."
    ) from e


def write_json(path: os.PathLike, obj: Any) -> None:
  """Writes `obj` as JSON to `path` atomically (temporary file, then rename)."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(json.dumps(obj, indent=1, default=float))
  os.replace(tmp, path)


def read_json(path: os.PathLike, default: Any = None) -> Any:
  path = pathlib.Path(path)
  if not path.exists():
    return default
  return json.loads(path.read_text())


def check_workdir_config(workdir: os.PathLike, config) -> None:
  """Records `config` in `<workdir>/config.json`; refuses a workdir of another config.

  Checkpoints are only meaningful for the config that wrote them, so resuming with a
  changed config is an error naming the fields that differ.
  """
  path = pathlib.Path(workdir) / "config.json"
  now = json.loads(config.to_json_best_effort())
  old = read_json(path)
  if old is not None and old != now:
    diff = sorted(k for k in set(old) | set(now) if old.get(k) != now.get(k))
    raise ValueError(f"{workdir} holds a run with another config (differs in {diff}); "
                     "use a fresh --workdir, or delete that one to start over")
  write_json(path, now)
