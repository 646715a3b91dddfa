"""Smoke test of the personal protocol on the quick config and real ML-100K."""

import json

import jax
import pytest

from experiments.configs import movielens_100k
from sslmetric.experiment import personal


def test_personal_protocol_writes_personal_json(tmp_path, shared_data_dir):
  assert jax.config.jax_enable_x64  # tests/conftest.py; the binary turns it on too
  config = movielens_100k.get_config("quick")
  config.data_dir = str(shared_data_dir)
  config.siamese.num_steps = 12
  config.spe.num_steps = 12
  config.ssl.num_steps = 6
  config.ssl.num_inducing = 32
  lines = []
  out = personal.run(config, tmp_path, log=lines.append)

  saved = json.loads((tmp_path / "personal.json").read_text())
  assert saved["share_improved"] == out["share_improved"]
  assert len(saved["users"]) == config.personal.n_users
  for rec in saved["users"]:
    assert 20 <= rec["n_interactions"] < 200 and rec["n_query_items"] > 0
    for variant in ("base", "personalized", "from_ssl_w"):
      assert 0.0 <= rec[variant]["hr@10"] <= 1.0
  for key, share in saved["share_improved"].items():
    n_better = sum(r["personalized"][key] > r["base"][key] for r in saved["users"])
    assert share == pytest.approx(n_better / len(saved["users"]))
  iters = [c["iteration"] for c in saved["curves"] if c["variant"] == "personalized"]
  assert iters == sorted(set(config.personal.curve_iterations))
  assert saved["protocol"]["noise_var"] > 0
  for name in ("personal_curves.csv", "personal_curves.png", "personal_users.png"):
    assert (tmp_path / name).exists()
  assert any("share of users improved" in line for line in lines)
