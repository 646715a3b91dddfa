"""The notebooks run end to end (quick config, real ML-100K, a fresh workdir)."""

import ast
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_quickstart_notebook_runs(tmp_path, shared_data_dir):
  env = dict(os.environ, SSLMETRIC_CONFIG_VARIANT="quick", SSLMETRIC_WORKDIR=str(tmp_path),
             SSLMETRIC_DATA_DIR=str(shared_data_dir), PJRT_NPROC="1")
  out = subprocess.run([sys.executable, "notebooks/run_notebook.py",
                        "notebooks/quickstart.ipynb"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
  assert "SSL metrics on the cold test items" in out.stdout
  assert "w_u:" in out.stdout
  lists = [ast.literal_eval(line) for line in out.stdout.splitlines() if line.startswith("['")]
  assert len(lists) == 2  # similar to Toy Story: base SSL metric, then user U's metric
  for titles in lists:
    assert len(titles) == 10 == len(set(titles)) and "Toy Story" not in titles
