"""Shared test set-up: float64 everywhere (float32 tests ask for it), real data paths."""

import os
import pathlib

os.environ.setdefault("PJRT_NPROC", "1")  # see README "Threading": avoids an XLA:CPU deadlock

import jax
import pytest

jax.config.update("jax_enable_x64", True)

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data_dir() -> pathlib.Path:
  """`../shared/data` beside the checkout (real MovieLens-100K in RecBole layout)."""
  if not (SHARED_DATA / "ml-100k" / "ml-100k.inter").exists():
    pytest.fail(f"real data not found at {SHARED_DATA}; tests expect ../shared/data "
                "beside the checkout (see README)")
  return SHARED_DATA
