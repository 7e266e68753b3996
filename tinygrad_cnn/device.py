"""Devices and the array module (the Chainer ``xp`` pattern).

A Tensor's data is a ``numpy.ndarray`` on ``"cpu"`` and a ``cupy.ndarray`` on
``"cuda"``. Code that is the same for both asks :func:`array_module` for the
module (``np`` or ``cupy``) and calls it; only kernels that must differ are
written twice. CuPy is imported lazily, so importing tinygrad_cnn never fails
or slows down on a machine without a GPU.
"""

from __future__ import annotations

import functools
from types import ModuleType

import numpy as np

DEVICES = ("cpu", "cuda")


GPU_INSTALL = "pip install -e '.[gpu-cuda13]' (CUDA 13 drivers) or -e '.[gpu]' (CUDA 12)"


@functools.lru_cache(maxsize=1)
def _probe() -> tuple[ModuleType | None, str]:
    """(cupy, "") when CuPy imports and sees a GPU, else (None, what is missing)."""
    try:
        import cupy  # noqa: PLC0415 - optional dependency, imported on demand
    except ImportError as error:
        return None, f"CuPy is not installed ({error}); install it with: {GPU_INSTALL}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # no driver, a driver too old for this CuPy, no device
        return None, f"CuPy {cupy.__version__} is installed but finds no usable CUDA GPU ({error})"
    if count < 1:
        return None, f"CuPy {cupy.__version__} is installed but sees no CUDA GPU"
    return cupy, ""


def _cupy() -> ModuleType | None:
    return _probe()[0]


def cuda_is_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    return _cupy() is not None


def cuda_unavailable_reason() -> str:
    """Which of CuPy or a GPU is missing ("" when CUDA is available)."""
    return _probe()[1]


def check_device(device: str) -> str:
    """Normalise a device name (``"cuda:0"`` counts as ``"cuda"``) and check it can be used."""
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'cpu' or 'cuda', got {device!r}")
    name = device.split(":")[0]
    if name not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")
    if name == "cuda" and not cuda_is_available():
        raise RuntimeError(f"device 'cuda' requested but {cuda_unavailable_reason()}")
    return name


def array_module(device: str) -> ModuleType:
    """``numpy`` for the CPU, ``cupy`` for CUDA."""
    return np if device == "cpu" else _cupy()


def device_of(array) -> str:
    """The device an array lives on."""
    return "cpu" if isinstance(array, (np.ndarray, np.generic)) else "cuda"


def move_array(array, device: str):
    """Copy an array to ``device`` (a no-op when it is already there)."""
    if device_of(array) == device:
        return array
    if device == "cpu":
        return _cupy().asnumpy(array)
    return _cupy().asarray(array)


def xp_of(array) -> ModuleType:
    """The array module an array belongs to (``numpy`` or ``cupy``)."""
    return np if isinstance(array, (np.ndarray, np.generic)) else _cupy()
