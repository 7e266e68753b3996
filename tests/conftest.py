"""Shared test configuration: Hypothesis profiles and small helpers.

Profiles, chosen by the environment variable TINYGRAD_CNN_HYPOTHESIS_PROFILE:
``dev`` (default, quick), ``ci`` (what .ci/run uses), ``thorough`` (many examples).
``deadline=None`` everywhere: the first call of a Numba kernel compiles it.
"""

import os

# pytest-xdist already runs one worker per core: BLAS, Numba and OpenMP threads inside each
# worker would oversubscribe the cores (small kernels then run 5-15x slower), so each worker
# gets one thread. Set before numpy or numba is imported by any test module.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                     "NUMBA_NUM_THREADS"):
        os.environ.setdefault(variable, "1")

from hypothesis import HealthCheck, settings  # noqa: E402 - after the thread settings

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                     HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=15, **_common)
settings.register_profile("ci", max_examples=40, derandomize=True, print_blob=True, **_common)
settings.register_profile("thorough", max_examples=400, **_common)
settings.load_profile(os.environ.get("TINYGRAD_CNN_HYPOTHESIS_PROFILE", "dev"))
