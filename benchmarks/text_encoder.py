"""Benchmark: MiniLM-L6 (JAX) on the 1,682 MovieLens-100K titles, bucketed vs fixed 128.

Reads the `movie_title` column of `ml-100k.item` (RecBole atomic layout) directly and
times `sslmetric.data.text.encode_texts` two ways: length-bucketed batches (the
default) and every batch padded to 128 tokens (what `tokenizer.json`'s stored fixed
padding would do). For each: the first call (compiles + runs), the best of the warm
calls (`--repeats`, `--fixed_repeats`), the compile time (trace + lower + XLA compile,
summed from jax.monitoring's compile events during the first call), the number of
shapes compiled, and titles/s on the warm time. Run from the repository root:

  PJRT_NPROC=1 .venv/bin/python benchmarks/text_encoder.py \
      --data_dir ../shared/data/ml-100k --batch_size 64 --repeats 3 --fixed_repeats 1
"""

import argparse
import csv
import os
import pathlib
import time

os.environ.setdefault("PJRT_NPROC", "1")

import jax  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
import pandas as pd  # pylint: disable=wrong-import-position

from sslmetric.data import text  # pylint: disable=wrong-import-position

REPO = pathlib.Path(__file__).resolve().parents[1]
_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                   "/jax/core/compile/jaxpr_to_mlir_module_duration",
                   "/jax/core/compile/backend_compile_duration")
_compile_seconds = [0.0]


def _on_event(event: str, duration_secs: float, **unused):
  if event in _COMPILE_EVENTS:
    _compile_seconds[0] += duration_secs


def read_titles(data_dir: pathlib.Path) -> list:
  path = data_dir / "ml-100k.item"
  items = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str,
                      keep_default_na=False, encoding="utf-8")
  (column,) = [c for c in items.columns if c.split(":")[0] == "movie_title"]
  return items[column].tolist()


def time_mode(titles, *, batch_size, repeats, fixed_length):
  """(embeddings, first-call s, compile s, shapes compiled, best warm s)."""
  shapes = text.embed_batch._cache_size()  # pylint: disable=protected-access
  _compile_seconds[0] = 0.0
  t0 = time.perf_counter()
  first = text.encode_texts(titles, batch_size=batch_size, fixed_length=fixed_length)
  cold = time.perf_counter() - t0
  compile_s = _compile_seconds[0]
  shapes = text.embed_batch._cache_size() - shapes  # pylint: disable=protected-access
  warm = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    again = text.encode_texts(titles, batch_size=batch_size, fixed_length=fixed_length)
    warm.append(time.perf_counter() - t0)
  np.testing.assert_array_equal(first, again)
  return first, cold, compile_s, shapes, min(warm)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data_dir", type=pathlib.Path,
                      default=REPO.parent / "shared" / "data" / "ml-100k")
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--fixed_repeats", type=int, default=1,
                      help="warm repeats for fixed 128 padding (~1 min each on 2 cores)")
  args = parser.parse_args()
  jax.monitoring.register_event_duration_secs_listener(_on_event)

  titles = read_titles(args.data_dir)
  t0 = time.perf_counter()
  text.encode_texts([])  # loads weights + tokenizer (not timed below)
  load_s = time.perf_counter() - t0
  lengths = np.array([len(i) for i in text.tokenize(titles)])
  print(f"{len(titles)} titles; tokens per title: mean {lengths.mean():.1f}, "
        f"median {np.median(lengths):.0f}, max {lengths.max()}; "
        f"model load {load_s:.2f} s; batch_size {args.batch_size}; "
        f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")

  rows, results = [], {}
  for name, fixed, repeats in (("bucketed (default)", None, args.repeats),
                               ("fixed 128 padding", 128, args.fixed_repeats)):
    emb, cold, comp, shapes, warm = time_mode(
        titles, batch_size=args.batch_size, repeats=repeats, fixed_length=fixed)
    results[name] = emb
    rows.append((name, len(titles), warm, comp, shapes, cold, len(titles) / warm,
                 1000 * warm / len(titles)))
  diff = np.abs(results["bucketed (default)"] - results["fixed 128 padding"]).max()

  header = ("mode", "titles", "warm s", "compile s", "shapes", "first call s",
            "titles/s", "s per 1000")
  print("| " + " | ".join(header) + " |")
  print("|" + "|".join("---" for _ in header) + "|")
  for name, n, warm, comp, shapes, cold, rate, per in rows:
    print(f"| {name} | {n} | {warm:.2f} | {comp:.2f} | {shapes} | {cold:.2f} | "
          f"{rate:.0f} | {per:.2f} |")
  print(f"speed-up of bucketing: {rows[1][2] / rows[0][2]:.1f}x; "
        f"max |bucketed - fixed128| = {diff:.1e}")


if __name__ == "__main__":
  main()
