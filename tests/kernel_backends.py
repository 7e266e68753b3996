"""The compiled backends and their strategies, for the kernel contract suites.

Every contract suite (``test_kernel_contract_*.py``) runs one op family's kernels on every
compiled backend x strategy x dtype and compares them with the reference backend, the
oracle written from the definition. A backend that is not installed is skipped with a
reason, except where ``TINYGRAD_CNN_REQUIRE_COMPILED=1`` (CI): there it fails.

The CuPy backend appears twice: ``"cupy"`` on a GPU (skipped with a reason where there is
none, CI included) and ``"cupy-emulated"``, the same CUDA sources compiled for the CPU
(``tests/cuda_emulator.py``), which runs everywhere. Both take and return numpy arrays
here (:class:`OnDevice` moves them), so the suites compare them like any other backend.
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
    if backend in CUPY_BACKENDS:
        return OnDevice(backend, family)
    try:
        return importlib.import_module(f"tinygrad_cnn.kernels.{backend}.{family}")
    except ImportError as error:
        if REQUIRE_COMPILED:
            pytest.fail(f"TINYGRAD_CNN_REQUIRE_COMPILED=1 but the {backend} kernels do not import: {error}",
                        pytrace=False)
        pytest.skip(f"{backend} kernels not available: {error}")


CUPY_BACKENDS = ("cupy", "cupy-emulated")
COMPILED = ("numba", "cython", *CUPY_BACKENDS)


class OnDevice:
    """A CuPy-backend kernel module that takes and returns numpy arrays: on the GPU
    (``"cupy"``: arguments copied there, results back) or in the CPU emulation
    (``"cupy-emulated"``). Attributes that are not functions (STRATEGIES) pass through."""

    def __init__(self, backend: str, family: str):
        import tinygrad_cnn.cuda  # noqa: PLC0415

        if backend == "cupy" and not tinygrad_cnn.cuda.is_available():
            pytest.skip(f"the cupy backend needs a CUDA GPU: {tinygrad_cnn.cuda.unavailable_reason()}")
        if backend == "cupy-emulated":
            from tests import cuda_emulator  # noqa: PLC0415

            if cuda_emulator.COMPILER is None and not REQUIRE_COMPILED:
                pytest.skip("the CUDA kernels' CPU emulation needs a C++ compiler (g++)")
        self.backend = backend
        self.module = importlib.import_module(f"tinygrad_cnn.kernels.cupy.{family}")

    def __getattr__(self, name: str):
        value = getattr(self.module, name)
        if name not in self.module.__dict__ or not callable(value) or isinstance(value, type) \
                or name == "choose":
            return value
        return lambda *args, **kwargs: self._call(value, args, kwargs)

    def _call(self, function, args, kwargs):
        from tinygrad_cnn.device import move_array  # noqa: PLC0415

        if self.backend == "cupy":
            def move(a):
                return move_array(a, "cuda") if isinstance(a, np.ndarray) else a
            result = function(*map(move, args), **{k: move(v) for k, v in kwargs.items()})
            return _to_host(result, lambda a: move_array(a, "cpu"))
        from tests.cuda_emulator import emulated  # noqa: PLC0415

        with emulated():
            return function(*args, **kwargs)


def _to_host(result, move):
    return tuple(move(r) for r in result) if isinstance(result, tuple) else move(result)


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
