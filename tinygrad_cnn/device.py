"""Devices and the array module (the Chainer ``xp`` pattern).

A Tensor's data is a ``numpy.ndarray`` on ``"cpu"`` and a ``cupy.ndarray`` on
``"cuda"``. Code that is the same for both asks :func:`array_module` for the
module (``np`` or ``cupy``) and calls it; only kernels that must differ are
written twice. CuPy is imported lazily, so importing tinygrad_cnn never fails
or slows down on a machine without a GPU.
"""

from __future__ import annotations

import functools
import os
from types import ModuleType

import numpy as np

DEVICES = ("cpu", "cuda")




@functools.lru_cache(maxsize=1)
def _cupy_or_reason() -> tuple[ModuleType | None, str]:
    """``(cupy, "")`` when CuPy imports and sees a GPU, else ``(None, why not)``."""
    try:
        import cupy  # noqa: PLC0415 - optional dependency, imported on demand
    except ImportError:
        return None, _without_cupy()
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CUDARuntimeError: no driver, no device, a driver too old for CuPy
        return None, f"CuPy is installed but cannot use a GPU: {type(error).__name__}: {error}"
    if count == 0:
        return None, "CuPy is installed but sees no CUDA GPU"
    return cupy, ""


def _driver_gpus() -> tuple[int, int] | None:
    """``(GPUs, CUDA major version)`` as the NVIDIA driver (libcuda) reports them, or None
    when there is no driver, i.e. no NVIDIA GPU to use. Asked only to explain an error."""
    import ctypes

    for name in ("nvcuda.dll",) if os.name == "nt" else ("libcuda.so.1", "libcuda.so", "libcuda.dylib"):
        try:
            driver = ctypes.CDLL(name)
            break
        except OSError:
            continue
    else:
        return None
    try:
        if driver.cuInit(0) != 0:  # 100: CUDA_ERROR_NO_DEVICE
            return 0, 0
        count, version = ctypes.c_int(0), ctypes.c_int(0)
        driver.cuDeviceGetCount(ctypes.byref(count))
        driver.cuDriverGetVersion(ctypes.byref(version))
    except AttributeError:  # not the CUDA driver API
        return None
    return count.value, version.value // 1000


def _without_cupy() -> str:
    """Why CUDA is unavailable when CuPy is not installed: no GPU, or a GPU without CuPy."""
    gpus = _driver_gpus()
    if gpus is None:
        return ("this machine has no NVIDIA GPU (no NVIDIA driver found) and CuPy is not installed; "
                "tinygrad_cnn runs on the CPU: use device='cpu' (the default)")
    count, major = gpus
    if count == 0:
        return ("the NVIDIA driver sees no GPU on this machine and CuPy is not installed; "
                "tinygrad_cnn runs on the CPU: use device='cpu' (the default)")
    extra = "gpu-cuda13" if major >= 13 else "gpu"
    return (f"this machine has {count} NVIDIA GPU(s) (driver for CUDA {major}) but CuPy, which runs "
            f"tinygrad_cnn's GPU kernels, is not installed: pip install -e '.[{extra}]'")


def _cupy() -> ModuleType | None:
    return _cupy_or_reason()[0]


def cuda_is_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    return _cupy() is not None


def cuda_unavailable_reason() -> str:
    """Why ``device='cuda'`` cannot be used here ("" when it can): which of CuPy or a GPU is missing."""
    return _cupy_or_reason()[1]


def check_device(device: str) -> str:
    """Normalise a device name (``"cuda:0"`` counts as ``"cuda"``) and check it can be used."""
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'cpu' or 'cuda', got {device!r}")
    name = device.split(":")[0]
    if name not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")
    if name == "cuda" and not cuda_is_available():
        raise RuntimeError(f"device 'cuda' requested, but {cuda_unavailable_reason()}")
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
