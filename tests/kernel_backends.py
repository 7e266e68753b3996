"""The compiled backends and their strategies, for the kernel contract suites.

Every contract suite (``test_kernel_contract_*.py``) runs one op family's kernels on every
compiled backend x strategy x dtype and compares them with the reference backend, the
oracle written from the definition. A backend that is not installed is skipped with a
reason, except where ``TINYGRAD_CNN_REQUIRE_COMPILED=1`` (CI): there it fails.
"""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest

REQUIRE_COMPILED = os.environ.get("TINYGRAD_CNN_REQUIRE_COMPILED") == "1"
DTYPES = (np.float32, np.float64)
RTOL = {np.float32: 1e-5, np.float64: 1e-10}


def reference(family: str):
    return importlib.import_module(f"tinygrad_cnn.kernels.reference.{family}")


def compiled(backend: str, family: str):
    """The backend's module for ``family``, or a skip (a failure in CI) if it does not load."""
    try:
        return importlib.import_module(f"tinygrad_cnn.kernels.{backend}.{family}")
    except ImportError as error:
        if REQUIRE_COMPILED:
            pytest.fail(f"TINYGRAD_CNN_REQUIRE_COMPILED=1 but the {backend} kernels do not import: {error}",
                        pytrace=False)
        pytest.skip(f"{backend} kernels not available: {error}")


COMPILED = ("numba", "cython")


def conv_plans(backend: str, shares: int = 1, stacked: int | None = None) -> list:
    """Every strategy of a backend's convolution, as the plans its kernels take."""
    module = compiled(backend, "conv")
    if backend == "numba":
        return [module.Plan(name, shares, stacked) for name in module.STRATEGIES]
    return list(module.STRATEGIES)


def assert_close(actual, expected, dtype, scale: float = 1.0) -> None:
    """rtol per dtype; atol relative to the largest magnitude involved (sums of many terms
    of both signs can cancel to values far below their parts' rounding error)."""
    rtol = RTOL[dtype]
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def data(seed: int, shape, dtype) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)
