"""True convolution vs cross-correlation, agreement with scipy.signal, linearity, equivariance.

    correlation  S(i, j) = sum_m sum_n I(i + m, j + n) K(m, n)
    convolution  S(i, j) = sum_m sum_n I(i - m, j - n) K(m, n) = correlation with rot180(K)
"""

import numpy as np
import pytest
import scipy.signal
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn.nn.functional as F
from tests.strategies import DTYPES, finite_arrays
from tests.test_conv_definition import arrays_for, conv_configs, tolerance
from tinygrad_cnn import Tensor, nn

MODES = st.sampled_from(["full", "same", "valid"])


@st.composite
def image_and_kernel(draw, kernel_fits=True, leading=()):
    """A non-square image (with optional leading batch dims) and a kernel, even sizes included."""
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    kh = draw(st.integers(1, h if kernel_fits else 5))
    kw = draw(st.integers(1, w if kernel_fits else 5))
    dtype = draw(DTYPES)
    x = draw(finite_arrays((*leading, h, w), np.float64))
    k = draw(finite_arrays((kh, kw), np.float64))
    return x.astype(dtype), k.astype(dtype)


def rot180(k):
    return k[::-1, ::-1].copy()


@given(data=image_and_kernel(), mode=st.sampled_from(["full", "valid"]))
def test_convolution_is_correlation_with_the_rotated_kernel(data, mode):
    x, k = data
    conv = F.convolve2d(Tensor(x), Tensor(k), mode)
    corr = F.correlate2d(Tensor(x), Tensor(rot180(k)), mode)
    np.testing.assert_allclose(conv.numpy(), corr.numpy(), **tolerance(x.dtype))


@given(data=image_and_kernel())
def test_same_mode_centring_differs_between_convolve_and_correlate_for_even_kernels(data):
    """Both 'same' outputs are H x W windows of the one 'full' output, but scipy centres them
    differently: convolve2d starts at ((kH - 1) // 2, (kW - 1) // 2), correlate2d at (kH // 2, kW // 2).
    The two agree for odd kernels and are shifted by one pixel along each even dimension."""
    x, k = data
    (h, w), (kh, kw) = x.shape, k.shape
    full = F.convolve2d(Tensor(x), Tensor(k), "full").numpy()  # == correlate2d(x, rot180(k), 'full')
    conv_same = F.convolve2d(Tensor(x), Tensor(k), "same").numpy()
    corr_same = F.correlate2d(Tensor(x), Tensor(rot180(k)), "same").numpy()
    r, c = (kh - 1) // 2, (kw - 1) // 2
    np.testing.assert_allclose(conv_same, full[r : r + h, c : c + w], **tolerance(x.dtype))
    r, c = kh // 2, kw // 2
    np.testing.assert_allclose(corr_same, full[r : r + h, c : c + w], **tolerance(x.dtype))
    if kh % 2 and kw % 2:
        np.testing.assert_allclose(conv_same, corr_same, **tolerance(x.dtype))


def test_even_kernel_same_mode_counterexample():
    x = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    k = np.array([[1.0, 10.0]])
    conv_same = F.convolve2d(Tensor(x), Tensor(k), "same").numpy()
    corr_same = F.correlate2d(Tensor(x), Tensor(rot180(k)), "same").numpy()
    np.testing.assert_array_equal(conv_same, [[1.0, 12.0, 23.0, 34.0, 45.0]])  # odd pixel on the left
    np.testing.assert_array_equal(corr_same, [[12.0, 23.0, 34.0, 45.0, 50.0]])  # odd pixel on the right


@given(a=image_and_kernel(kernel_fits=False))
def test_convolution_is_commutative_in_full_mode(a):
    x, k = a
    np.testing.assert_allclose(F.convolve2d(Tensor(x), Tensor(k), "full").numpy(),
                               F.convolve2d(Tensor(k), Tensor(x), "full").numpy(), **tolerance(x.dtype))


@given(a=image_and_kernel(kernel_fits=False))
def test_correlation_swapped_is_rotated(a):
    """correlate(a, b) == rot180(correlate(b, a)): swapping the arguments reflects the output,
    which is why correlation is not commutative."""
    x, k = a
    np.testing.assert_allclose(F.correlate2d(Tensor(x), Tensor(k), "full").numpy(),
                               rot180(F.correlate2d(Tensor(k), Tensor(x), "full").numpy()),
                               **tolerance(x.dtype))


def test_correlation_is_not_commutative():
    a = np.array([[1.0, 2.0, 3.0]])
    b = np.array([[0.0, 1.0]])
    ab = F.correlate2d(Tensor(a), Tensor(b), "full").numpy()
    ba = F.correlate2d(Tensor(b), Tensor(a), "full").numpy()
    np.testing.assert_array_equal(ab, [[1.0, 2.0, 3.0, 0.0]])
    np.testing.assert_array_equal(ba, [[0.0, 3.0, 2.0, 1.0]])
    assert not np.array_equal(ab, ba)


@given(data=image_and_kernel(), mode=MODES)
def test_agrees_with_scipy_signal(data, mode):
    x, k = data
    x64, k64 = x.astype(np.float64), k.astype(np.float64)
    conv = F.convolve2d(Tensor(x), Tensor(k), mode)
    corr = F.correlate2d(Tensor(x), Tensor(k), mode)
    assert conv.dtype == x.dtype and corr.dtype == x.dtype
    np.testing.assert_allclose(conv.numpy(), scipy.signal.convolve2d(x64, k64, mode), **tolerance(x.dtype))
    np.testing.assert_allclose(corr.numpy(), scipy.signal.correlate2d(x64, k64, mode), **tolerance(x.dtype))


@given(data=image_and_kernel(leading=(2, 3)), mode=MODES)
def test_batches_are_convolved_image_by_image(data, mode):
    x, k = data
    conv = F.convolve2d(Tensor(x), Tensor(k), mode).numpy()
    corr = F.correlate2d(Tensor(x), Tensor(k), mode).numpy()
    for index in np.ndindex(*x.shape[:2]):
        image = x[index].astype(np.float64)
        tol = tolerance(x.dtype)
        np.testing.assert_allclose(conv[index], scipy.signal.convolve2d(image, k, mode), **tol)
        np.testing.assert_allclose(corr[index], scipy.signal.correlate2d(image, k, mode), **tol)


@given(length=st.integers(1, 9), k_length=st.integers(1, 9), batch=st.integers(0, 2), mode=MODES,
       seed=st.integers(0, 2**16))
def test_one_dimensional_versions(length, k_length, batch, mode, seed):
    """convolve1d agrees with numpy.convolve; both 1-D functions with the 2-D ones on one-row images."""
    if mode != "full":  # numpy's 'same' would return the longer of the two lengths
        k_length = min(k_length, length)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, length) if batch else (length,))
    k = rng.standard_normal(k_length)
    conv = F.convolve1d(Tensor(x), Tensor(k), mode).numpy()
    corr = F.correlate1d(Tensor(x), Tensor(k), mode).numpy()
    for index, signal in ([((i,), x[i]) for i in range(batch)] if batch else [((), x)]):
        np.testing.assert_allclose(conv[index], np.convolve(signal, k, mode), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(corr[index], scipy.signal.correlate2d(signal[None], k[None], mode)[0],
                                   rtol=1e-10, atol=1e-10)


def test_signal_argument_errors():
    with pytest.raises(ValueError, match="mode must be one of.*'half'"):
        F.convolve2d(Tensor(np.zeros((3, 3))), Tensor(np.zeros((2, 2))), "half")
    with pytest.raises(ValueError, match=r"'valid' needs the kernel \(4, 1\) to fit inside the input \(3, 3"):
        F.correlate2d(Tensor(np.zeros((3, 3))), Tensor(np.zeros((4, 1))), "valid")
    with pytest.raises(ValueError, match=r"kernel must be 2-D, got shape \(2,\)"):
        F.convolve2d(Tensor(np.zeros((3, 3))), Tensor(np.zeros(2)))


# --------------------------------------------------------------- linearity, equivariance
@given(config=conv_configs(), seed=st.integers(0, 2**16), a=st.floats(-2, 2), b=st.floats(-2, 2))
def test_conv2d_is_linear_in_input_and_in_kernel(config, seed, a, b):
    pairs = arrays_for(config, seed)[:2] + arrays_for(config, seed + 1)[:2]
    x1, w1, x2, w2 = (array.astype(np.float64) for array in pairs)
    options = dict(stride=config["stride"], padding=config["padding"], dilation=config["dilation"],
                   groups=config["groups"])

    def conv(x, w):
        return F.conv2d(Tensor(x), Tensor(w), **options).numpy()

    np.testing.assert_allclose(conv(a * x1 + b * x2, w1), a * conv(x1, w1) + b * conv(x2, w1),
                               rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(conv(x1, a * w1 + b * w2), a * conv(x1, w1) + b * conv(x1, w2),
                               rtol=1e-9, atol=1e-9)


@st.composite
def equivariance_case(draw):
    h, w = draw(st.integers(3, 7)), draw(st.integers(3, 7))
    kh, kw = draw(st.sampled_from([1, 3])), draw(st.sampled_from([1, 3]))  # odd: 'same' is centred
    c_in, c_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    shift = (draw(st.integers(-h, h)), draw(st.integers(-w, w)))
    return h, w, kh, kw, c_in, c_out, shift, draw(st.integers(0, 2**16))


@given(case=equivariance_case())
def test_translation_equivariance_is_exact_with_circular_padding(case):
    """conv(shift(x)) == shift(conv(x)) for cyclic shifts: with circular padding the image is a torus."""
    h, w, kh, kw, c_in, c_out, shift, seed = case
    layer = nn.Conv2d(c_in, c_out, (kh, kw), padding="same", padding_mode="circular", dtype="float64")
    x = np.random.default_rng(seed).standard_normal((1, c_in, h, w))
    shifted_then_conv = layer(Tensor(np.roll(x, shift, axis=(2, 3)))).numpy()
    conv_then_shifted = np.roll(layer(Tensor(x)).numpy(), shift, axis=(2, 3))
    np.testing.assert_allclose(shifted_then_conv, conv_then_shifted, rtol=1e-10, atol=1e-10)


@given(case=equivariance_case())
def test_translation_equivariance_holds_on_the_interior_with_zero_padding(case):
    """Shift by (dy, dx) >= 0 pushing zeros in at the top/left: every output whose window lies
    inside the shifted image moves by (dy, dx); only the border, which sees zeros, changes."""
    h, w, kh, kw, c_in, c_out, (dy, dx), seed = case
    dy, dx = abs(dy) % (h - kh + 1), abs(dx) % (w - kw + 1)  # keep part of the output in view
    layer = nn.Conv2d(c_in, c_out, (kh, kw), dtype="float64")  # valid: windows never leave the image
    x = np.random.default_rng(seed).standard_normal((1, c_in, h, w))
    shifted = np.zeros_like(x)
    shifted[:, :, dy:, dx:] = x[:, :, : h - dy, : w - dx]
    y, y_shifted = layer(Tensor(x)).numpy(), layer(Tensor(shifted)).numpy()
    oh, ow = y.shape[2:]
    np.testing.assert_allclose(y_shifted[:, :, dy:, dx:], y[:, :, : oh - dy, : ow - dx],
                               rtol=1e-10, atol=1e-10)
