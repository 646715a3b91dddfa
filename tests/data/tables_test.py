"""Tests for sslmetric.data.tables, the format-independent pieces, on the real ML-100K.

The loaders' behaviour on every layout (id order, duplicates, scales, error lines) is
tested through them in movielens_test.py and yelp_test.py.
"""

import hashlib

from sslmetric.data import tables


def test_ratings_digest_matches_independent_rendering(shared_data_dir):
  path = shared_data_dir / "ml-100k" / "ml-100k.inter"
  rows = sorted(tuple(int(float(x)) for x in ln.split("\t"))
                for ln in path.read_text().splitlines()[1:])
  want = hashlib.sha256("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows)
                        .encode()).hexdigest()
  # The RecBole header is user_id:token, item_id:token, rating:float, timestamp:float.
  table = tables.read_ratings(
      path, sep="\t", fields=[("user_id", tables.TOKEN), ("item_id", tables.TOKEN),
                              ("rating", tables.FLOAT), ("timestamp", tables.INT)],
      roles=("user_id", "item_id", "rating", "timestamp"), skip=1, encoding="utf-8")
  assert tables.ratings_digest(table) == want
