"""sslmetric: personalised item-to-item similarity metrics from implicit feedback (JAX).

Importing the package first sets safe CPU threading (PJRT_NPROC=1 for XLA:CPU and
OPENBLAS_NUM_THREADS=1, see docs/threading.md) unless JAX has already started or the
user chose a value.
"""

from sslmetric import _threading

_threading.ensure_safe_cpu_threading()

__version__ = "0.1.0"
