"""Hand-designed kernels: their defining properties, checked on synthetic images."""

import numpy as np
import pytest
from scipy.signal import correlate2d

from tinygrad_cnn import filters


def ramp(direction):
    """An image whose intensity grows by 1 per pixel to the right (x) or downwards (y)."""
    r = np.tile(np.arange(8.0), (8, 1))
    return r if direction == "x" else r.T


@pytest.mark.parametrize("size", [3, 9])
def test_box_blur_averages(size):
    k = filters.box_blur(size)
    assert k.shape == (size, size) and k.sum() == pytest.approx(1.0)
    image = np.random.default_rng(0).random((12, 12))
    out = correlate2d(image, k, mode="valid")
    assert out[0, 0] == pytest.approx(image[:size, :size].mean())


def test_blurs_and_sharpen_keep_flat_regions():
    flat = np.full((6, 6), 3.0)
    for k in (filters.box_blur(3), filters.gaussian_blur(5, 1.2), filters.sharpen(2.0),
              filters.identity(3)):
        np.testing.assert_allclose(correlate2d(flat, k, mode="valid"), 3.0, rtol=1e-6)


def test_sharpen_amplifies_differences_from_the_local_mean():
    image = np.zeros((5, 5))
    image[2, 2] = 9.0
    out = correlate2d(image, filters.sharpen(1.0), mode="valid")
    # centre pixel: 9 + 1 * (9 - 9/9) = 17
    assert out[1, 1] == pytest.approx(17.0)


@pytest.mark.parametrize("make", [filters.sobel, filters.prewitt])
@pytest.mark.parametrize("direction", ["x", "y"])
def test_derivative_kernels_respond_to_their_direction_only(make, direction):
    other = "y" if direction == "x" else "x"
    k = make(direction)
    assert k.sum() == 0
    along = correlate2d(ramp(direction), k, mode="valid")
    across = correlate2d(ramp(other), k, mode="valid")
    assert np.all(along > 0) and np.allclose(along, along[0, 0])
    np.testing.assert_allclose(across, 0.0)


def test_roberts_responds_to_diagonal_ramps():
    diagonal = ramp("x") + ramp("y")
    assert np.all(correlate2d(diagonal, filters.roberts("x"), mode="valid") == 2)
    assert np.all(correlate2d(diagonal, filters.roberts("y"), mode="valid") == 0)


def test_kirsch_compass_kernels_are_rotations():
    kernels = filters.kirsch_all()
    assert kernels.shape == (8, 3, 3)
    for k in kernels:
        assert sorted(k.ravel().tolist()) == [-3] * 5 + [0] + [5] * 3
        assert k.sum() == 0
    np.testing.assert_array_equal(filters.kirsch("N")[0], [5, 5, 5])
    np.testing.assert_array_equal(filters.kirsch("S")[2], [5, 5, 5])
    np.testing.assert_array_equal(filters.kirsch("W")[:, 0], [5, 5, 5])
    np.testing.assert_array_equal(filters.kirsch("E")[:, 2], [5, 5, 5])
    # North responds most to a region brighter above.
    bright_top = np.vstack([np.full((4, 8), 10.0), np.zeros((4, 8))])
    responses = [correlate2d(bright_top, k, mode="valid")[2, 3] for k in kernels]
    assert int(np.argmax(responses)) == filters.KIRSCH_DIRECTIONS.index("N")


def test_laplacian_of_a_quadratic_is_constant():
    y, x = np.mgrid[0:7, 0:7].astype(float)
    image = x**2 + 2 * y**2  # Laplacian = 2 + 4 = 6
    np.testing.assert_allclose(correlate2d(image, filters.laplacian(), mode="valid"), 6.0)
    assert filters.laplacian(diagonals=True).sum() == 0


def test_gradient_magnitude_and_direction():
    mag, ang = filters.gradient_magnitude_direction(np.array([3.0, 0.0]), np.array([4.0, 2.0]))
    np.testing.assert_allclose(mag, [5.0, 2.0])
    np.testing.assert_allclose(ang, [np.arctan2(4, 3), np.pi / 2])


def test_bad_arguments():
    with pytest.raises(ValueError, match="size must be a positive int, got 0"):
        filters.box_blur(0)
    with pytest.raises(ValueError, match="direction must be 'x' or 'y', got 'z'"):
        filters.sobel("z")
    with pytest.raises(ValueError, match="kirsch: direction must be one of"):
        filters.kirsch("up")
