"""Benchmark: memory and time of the streaming Yelp loader on a synthetic review file.

Writes a synthetic `yelp_academic_dataset_review.json` (`--lines` JSON lines, each with a
`--text_chars` review text) and a business file into a temporary directory, then loads
them with `sslmetric.data.yelp.load_yelp` once per chunk size, each load in a fresh
subprocess: one run measures wall time and the peak-RSS increase (`ru_maxrss` after the
load minus before it, imports done), a second run the tracemalloc peak (Python heap
allocations; slower, so its time is not reported). Prints a table. Run from the
repository root:

  PJRT_NPROC=1 .venv/bin/python benchmarks/yelp_memory.py --lines 1000000 \
      --chunks 10000 100000
"""

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

REVIEW = "yelp_academic_dataset_review.json"
BUSINESS = "yelp_academic_dataset_business.json"
CATEGORIES = ["Restaurants", "Food", "Shopping", "Bars", "Nightlife", "Pizza", "Coffee",
              "Beauty & Spas", "Hotels", "Auto Repair", "Fitness", "Mexican", "Italian"]


def generate(d: pathlib.Path, *, lines: int, users: int, businesses: int,
             text_chars: int, seed: int = 0) -> None:
  """Writes the business file and a review file of `lines` lines into `d`."""
  rng = np.random.default_rng(seed)
  with open(d / BUSINESS, "w") as f:
    for b in range(businesses):
      cats = ", ".join(rng.choice(CATEGORIES, size=rng.integers(1, 4), replace=False))
      f.write(json.dumps({"business_id": f"b{b:07d}xxxxxxxxxxxxxx", "name": f"Place {b}",
                          "categories": cats, "stars": 4.0}) + "\n")
  text = ("lorem ipsum dolor sit amet " * (text_chars // 27 + 1))[:text_chars]
  block = 100_000
  with open(d / REVIEW, "w") as f:
    for start in range(0, lines, block):
      n = min(block, lines - start)
      u = rng.integers(0, users, n)
      b = rng.integers(0, businesses, n)
      s = rng.integers(1, 6, n)
      t = rng.integers(1_100_000_000, 1_650_000_000, n).astype("datetime64[s]")
      dates = np.datetime_as_string(t).tolist()
      f.write("".join(
          f'{{"review_id":"r{start + j:021d}","user_id":"u{u[j]:08d}xxxxxxxxxxxxx",'
          f'"business_id":"b{b[j]:07d}xxxxxxxxxxxxxx","stars":{s[j]}.0,"useful":0,'
          f'"funny":0,"cool":0,"text":"{text}","date":"{dates[j].replace("T", " ")}"}}\n'
          for j in range(n)))


def child(directory: str, chunk: int, mode: str) -> None:
  """One measured load; prints a JSON line."""
  from sslmetric.data import yelp  # pylint: disable=g-import-not-at-top
  import tracemalloc  # pylint: disable=g-import-not-at-top
  before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
  if mode == "tracemalloc":
    tracemalloc.start()
  start = time.perf_counter()
  ds = yelp.load_yelp(directory, chunk_lines=chunk)
  seconds = time.perf_counter() - start
  peak = tracemalloc.get_traced_memory()[1] if mode == "tracemalloc" else 0
  after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  print(json.dumps({"seconds": seconds, "rss_increase_kib": after - before,
                    "tracemalloc_peak_bytes": peak, "reviews": len(ds.interactions),
                    "users": ds.interactions.num_users}))


def run_child(directory, chunk, mode) -> dict:
  out = subprocess.run([sys.executable, __file__, "--child", directory, str(chunk), mode],
                       capture_output=True, text=True, check=True,
                       env={**os.environ, "PJRT_NPROC": "1"})
  return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--lines", type=int, default=1_000_000)
  parser.add_argument("--chunks", type=int, nargs="+", default=[10_000, 100_000])
  parser.add_argument("--users", type=int, default=200_000)
  parser.add_argument("--businesses", type=int, default=20_000)
  parser.add_argument("--text_chars", type=int, default=300)
  parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    child(args.child[0], int(args.child[1]), args.child[2])
    return
  with tempfile.TemporaryDirectory(prefix="yelp-bench-") as tmp:
    d = pathlib.Path(tmp)
    start = time.perf_counter()
    generate(d, lines=args.lines, users=args.users, businesses=args.businesses,
             text_chars=args.text_chars)
    size_mib = (d / REVIEW).stat().st_size / 2**20
    print(f"generated {args.lines:,d} review lines ({size_mib:,.0f} MiB) in "
          f"{time.perf_counter() - start:.1f} s")
    print(f"{'lines':>10} {'chunk':>8} {'seconds':>8} {'lines/s':>9} "
          f"{'RSS +MiB':>9} {'tracemalloc MiB':>16} {'file MiB':>9} {'RSS/file':>9}")
    for chunk in args.chunks:
      r = run_child(tmp, chunk, "rss")
      t = run_child(tmp, chunk, "tracemalloc")
      rss = r["rss_increase_kib"] / 1024
      print(f"{r['reviews']:>10,d} {chunk:>8,d} {r['seconds']:>8.1f} "
            f"{r['reviews'] / r['seconds']:>9,.0f} {rss:>9.0f} "
            f"{t['tracemalloc_peak_bytes'] / 2**20:>16.0f} {size_mib:>9.0f} "
            f"{rss / size_mib:>9.2f}")


if __name__ == "__main__":
  main()
