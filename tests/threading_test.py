"""sslmetric._threading in fresh interpreters: set, kept, overridden (warned), too late (warned)."""

import os
import subprocess
import sys

import pytest

SNIPPET = """
import os, warnings
warnings.simplefilter("always")
{pre}
with warnings.catch_warnings(record=True) as caught:
  import sslmetric
  from sslmetric import _threading
  report = _threading.ensure_safe_cpu_threading()
print(os.environ.get("PJRT_NPROC"), report.pjrt_nproc.value,
      sum("PJRT_NPROC" in str(w.message) for w in caught))
"""


def _run(pre: str, env_extra: dict) -> list:
  env = {k: v for k, v in os.environ.items()
         if k not in ("PJRT_NPROC", "OPENBLAS_NUM_THREADS")}
  env.update(env_extra)
  out = subprocess.run([sys.executable, "-c", SNIPPET.format(pre=pre)], env=env,
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  return out.stdout.split()


@pytest.mark.parametrize("pre, env, value, action, warned", [
    ("", {}, "1", "already_safe", False),  # set on import; the second call finds it
    ("", {"PJRT_NPROC": "1"}, "1", "already_safe", False),
    ("", {"PJRT_NPROC": "4"}, "4", "user_override", True),
    ("import jax; jax.numpy.zeros(1).block_until_ready()", {}, "None", "too_late", True),
])
def test_threading_setting(pre, env, value, action, warned):
  got_value, got_action, n_warnings = _run(pre, env)
  assert got_value == value
  assert got_action == action
  assert (int(n_warnings) > 0) == warned
