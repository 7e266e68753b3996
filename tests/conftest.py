"""Shared test configuration: Hypothesis profiles and small helpers.

Profiles, chosen by the environment variable TINYGRAD_CNN_HYPOTHESIS_PROFILE:
``dev`` (default, quick), ``ci`` (what .ci/run uses), ``thorough`` (many examples).
``deadline=None`` everywhere: the first call of a Numba kernel compiles it.
"""

import os

from hypothesis import HealthCheck, settings

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                     HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=15, **_common)
settings.register_profile("ci", max_examples=40, derandomize=True, print_blob=True, **_common)
settings.register_profile("thorough", max_examples=400, **_common)
settings.load_profile(os.environ.get("TINYGRAD_CNN_HYPOTHESIS_PROFILE", "dev"))
