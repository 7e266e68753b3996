"""Shared test configuration: Hypothesis profiles, the ``device`` fixture and small helpers.

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

import pytest  # noqa: E402 - after the thread settings
from hypothesis import HealthCheck, settings  # noqa: E402

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                     HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=15, **_common)
settings.register_profile("ci", max_examples=40, derandomize=True, print_blob=True, **_common)
settings.register_profile("thorough", max_examples=400, **_common)
settings.load_profile(os.environ.get("TINYGRAD_CNN_HYPOTHESIS_PROFILE", "dev"))


# ------------------------------------------------------------------ devices
DEVICES = ("cpu", "cuda")


@pytest.fixture(scope="session", params=DEVICES)
def device(request) -> str:
    """Each test that takes ``device`` runs once per device: on "cuda" only where CuPy sees a
    GPU, skipped with the reason elsewhere (``pytest -k cuda`` runs the GPU cases alone).
    Session-scoped, so Hypothesis tests may take it too."""
    import tinygrad_cnn  # noqa: PLC0415 - after the thread settings above

    if request.param == "cuda" and not tinygrad_cnn.cuda.is_available():
        pytest.skip(f"no GPU for the cuda case: {tinygrad_cnn.cuda.unavailable_reason()}")
    return request.param
