"""Hand-designed convolution kernels: what image processing did before kernels were learned.

Each function returns a float32 numpy array, a kernel K to be used with
cross-correlation, S(i, j) = sum_m sum_n I(i + m, j + n) K(m, n) (what
``F.conv2d`` and ``F.correlate2d`` compute). The derivative kernels are written
so that correlating with them gives a positive response where intensity
*increases* to the right (x) or downwards (y).
"""

from __future__ import annotations

import numpy as np


def box_blur(size: int = 3) -> np.ndarray:
    """The mean filter: every one of the size x size weights is 1 / size^2 (they sum to 1,
    so a flat region keeps its brightness)."""
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"box_blur: size must be a positive int, got {size!r}")
    return np.full((size, size), 1.0 / size**2, dtype=np.float32)


def gaussian_blur(size: int = 5, sigma: float = 1.0) -> np.ndarray:
    """exp(-(x^2 + y^2) / (2 sigma^2)) on a size x size grid centred at 0, normalised to sum 1."""
    if not isinstance(size, int) or size < 1 or sigma <= 0:
        raise ValueError(f"gaussian_blur: need size >= 1 and sigma > 0, got {size!r}, {sigma!r}")
    r = np.arange(size) - (size - 1) / 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return (g / g.sum()).astype(np.float32)


def identity(size: int = 3) -> np.ndarray:
    """1 at the centre, 0 elsewhere: correlation with it returns the image unchanged."""
    if not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise ValueError(f"identity: size must be a positive odd int, got {size!r}")
    k = np.zeros((size, size), dtype=np.float32)
    k[size // 2, size // 2] = 1.0
    return k


def sharpen(amount: float = 1.0) -> np.ndarray:
    """Unsharp masking: image + amount * (image - blur(image)), with a 3x3 box blur,
    i.e. K = (1 + amount) * identity - amount * box. The weights sum to 1."""
    return ((1 + amount) * identity(3) - amount * box_blur(3)).astype(np.float32)


def sobel(direction: str = "x") -> np.ndarray:
    """Sobel derivative: central difference [-1, 0, 1] across, smoothing [1, 2, 1] along."""
    return _oriented(np.outer([1, 2, 1], [-1, 0, 1]), direction, "sobel")


def prewitt(direction: str = "x") -> np.ndarray:
    """Prewitt derivative: central difference [-1, 0, 1] across, box smoothing [1, 1, 1] along."""
    return _oriented(np.outer([1, 1, 1], [-1, 0, 1]), direction, "prewitt")


def roberts(direction: str = "x") -> np.ndarray:
    """Roberts cross: 2x2 differences along the two diagonals ("x": main diagonal)."""
    if direction not in ("x", "y"):
        raise ValueError(f"roberts: direction must be 'x' or 'y', got {direction!r}")
    k = [[-1, 0], [0, 1]] if direction == "x" else [[0, -1], [1, 0]]
    return np.array(k, dtype=np.float32)


def _oriented(kernel_x: np.ndarray, direction: str, name: str) -> np.ndarray:
    if direction not in ("x", "y"):
        raise ValueError(f"{name}: direction must be 'x' or 'y', got {direction!r}")
    return (kernel_x if direction == "x" else kernel_x.T).astype(np.float32)


KIRSCH_DIRECTIONS = ("N", "NW", "W", "SW", "S", "SE", "E", "NE")


def kirsch(direction: str = "N") -> np.ndarray:
    """Kirsch compass kernel: 5 on the three border cells facing ``direction``, -3 on the other
    five border cells, 0 in the centre. The eight directions are rotations of one another by 45
    degrees (one step around the border ring)."""
    if direction not in KIRSCH_DIRECTIONS:
        raise ValueError(f"kirsch: direction must be one of {KIRSCH_DIRECTIONS}, got {direction!r}")
    # The 8 border cells clockwise from the top-left corner.
    ring = [(0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0)]
    weights = [5, 5, 5, -3, -3, -3, -3, -3]  # facing north: the top row
    shift = KIRSCH_DIRECTIONS.index(direction)  # each step rotates 45 degrees anticlockwise
    k = np.zeros((3, 3), dtype=np.float32)
    for i, (r, c) in enumerate(ring):
        k[r, c] = weights[(i + shift) % 8]
    return k


def kirsch_all() -> np.ndarray:
    """All eight Kirsch kernels stacked as (8, 3, 3), in ``KIRSCH_DIRECTIONS`` order."""
    return np.stack([kirsch(d) for d in KIRSCH_DIRECTIONS])


def laplacian(diagonals: bool = False) -> np.ndarray:
    """Discrete Laplacian d2/dx2 + d2/dy2: 4-neighbour [[0,1,0],[1,-4,1],[0,1,0]], or with the
    diagonals [[1,1,1],[1,-8,1],[1,1,1]]. It sums to 0: flat regions give 0, edges give a
    zero crossing."""
    if diagonals:
        k = np.ones((3, 3), dtype=np.float32)
        k[1, 1] = -8
        return k
    return np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float32)


def gradient_magnitude_direction(gx: np.ndarray, gy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """From derivative images: magnitude sqrt(gx^2 + gy^2) and direction atan2(gy, gx) (radians,
    0 = intensity increasing to the right, pi/2 = increasing downwards)."""
    gx, gy = np.asarray(gx), np.asarray(gy)
    if gx.shape != gy.shape:
        raise ValueError(f"gradient images differ in shape: {gx.shape} and {gy.shape}")
    return np.hypot(gx, gy), np.arctan2(gy, gx)
