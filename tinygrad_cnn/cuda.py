"""``tinygrad_cnn.cuda``: is there a GPU to run on? (as ``torch.cuda``)

Asking never fails and imports CuPy only when first asked, so ``import
tinygrad_cnn`` stays fast and works on machines without CuPy or a GPU.
"""

from __future__ import annotations

from tinygrad_cnn.device import _cupy, cuda_is_available, cuda_unavailable_reason


def is_available() -> bool:
    """True when CuPy is installed and sees a CUDA device."""
    return cuda_is_available()


def unavailable_reason() -> str:
    """Why :func:`is_available` is False: CuPy is not installed, or it finds no GPU ("" when
    it is True)."""
    return cuda_unavailable_reason()


def device_count() -> int:
    """How many CUDA devices CuPy sees (0 without CuPy)."""
    cupy = _cupy()
    return 0 if cupy is None else int(cupy.cuda.runtime.getDeviceCount())


def device_name(index: int = 0) -> str:
    """The name of CUDA device ``index``, e.g. 'NVIDIA H100 80GB HBM3'."""
    cupy = _cupy()
    if cupy is None:
        raise RuntimeError(f"no CUDA device: {cuda_unavailable_reason()}")
    name = cupy.cuda.runtime.getDeviceProperties(index)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)
