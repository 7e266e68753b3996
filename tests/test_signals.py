"""1-D signals: the synthetic event generator, sliding windows and event detection
(tinygrad_cnn.data.signals), causal convolution (nn.CausalConv1d) and models.CausalCNN,
against loops written from the definitions."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn as tc
from tinygrad_cnn import Tensor, data, models, nn, theory
from tinygrad_cnn.testing import gradcheck


# ------------------------------------------------------------------------- event shapes
def test_event_waveforms_have_unit_peak_and_start_quietly():
    for kind in data.SIGNAL_CLASSES:
        wave = data.event_waveform(kind, 40)
        assert wave.shape == (40,) and np.abs(wave).max() == pytest.approx(1.0)
        assert abs(wave[0]) < 1e-3, f"{kind} starts at its arrival, from (almost) zero"
        assert abs(wave[-1]) < 0.05, f"{kind} has died down after 40 samples"
    spike = data.event_waveform("spike", 17)
    np.testing.assert_allclose(spike[:8], spike[9:][::-1], atol=1e-12)  # symmetric about sample 8
    assert spike[8] == 1.0
    ringing = data.event_waveform(1, 40)
    np.testing.assert_allclose(ringing[::3], 0.0, atol=1e-12)  # sin(2 pi u / 6): zero every 3 samples
    chirp = data.event_waveform("chirp", 60)
    np.testing.assert_array_equal(chirp[32:], 0.0)  # Hann window of 32 samples, then silence


def test_stretch_slows_the_event_down():
    # the spike's peak lies on a sample for stretch 1 and 2, so both are normalised alike
    np.testing.assert_allclose(data.event_waveform("spike", 80, stretch=2.0)[::2],
                               data.event_waveform("spike", 40), atol=1e-12)


@pytest.mark.parametrize("kind, kwargs, message", [
    ("bump", {}, "kind must be one of"),
    (3, {}, "kind must be one of"),
    ("spike", {"stretch": 0}, "stretch must be a positive number"),
    ("spike", {"length": 0}, "length must be a positive int"),
])
def test_event_waveform_errors(kind, kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.event_waveform(kind, **kwargs)


# ----------------------------------------------------------------------------- generator
def test_make_signal_events_shapes_seed_and_spacing():
    x, labels, arrivals = data.make_signal_events(20, 300, 3, min_gap=50, seed=4)
    assert x.shape == (20, 1, 300) and x.dtype == np.float32
    assert labels.shape == arrivals.shape == (20, 3) and labels.dtype == arrivals.dtype == np.int64
    assert set(np.unique(labels)) <= {0, 1, 2}
    assert np.all(np.diff(arrivals, axis=1) >= 50) and arrivals.min() >= 0 and arrivals.max() <= 300 - 40
    again = data.make_signal_events(20, 300, 3, min_gap=50, seed=4)
    for a, b in zip(again, (x, labels, arrivals)):
        np.testing.assert_array_equal(a, b)
    other = data.make_signal_events(20, 300, 3, min_gap=50, seed=5)
    assert not np.array_equal(other[0], x)


def test_events_are_the_waveforms_at_their_arrivals():
    """Without noise, with amplitude and duration fixed, a recording is the sum of ±waveforms
    placed at the arrivals; an event that runs past the end is cut."""
    n, length = 30, 200
    x, labels, arrivals = data.make_signal_events(n, length, 2, noise=0.0, amplitude=(1.5, 1.5),
                                                  stretch=(1, 1), event_length=40,
                                                  arrival_range=(0, length - 1), seed=0)
    for i in range(n):
        expected = np.zeros(length)
        signs = []
        for c, a in zip(labels[i], arrivals[i]):
            wave = data.event_waveform(int(c), 40)[: length - a]
            segment = x[i, 0, a:a + len(wave)]
            sign = np.sign(segment[np.argmax(np.abs(wave))] * wave[np.argmax(np.abs(wave))])
            signs.append(sign)
            expected[a:a + len(wave)] += 1.5 * sign * wave
        np.testing.assert_allclose(x[i, 0], expected, atol=1e-5)
    assert np.any(arrivals[:, -1] > length - 40), "some events were cut at the end"


def test_noise_only_recordings_and_class_choice():
    x, labels, arrivals = data.make_signal_events(8, 2000, 0, noise=0.5, seed=1)
    assert labels.shape == arrivals.shape == (8, 0)
    assert abs(x.std() - 0.5) < 0.01 and abs(x.mean()) < 0.01
    _, labels, _ = data.make_signal_events(50, 200, 2, classes=["chirp", 0], seed=2)
    assert set(np.unique(labels)) == {0, 2}


@pytest.mark.parametrize("kwargs, message", [
    (dict(events_per_signal=10, min_gap=40), "do not fit"),
    (dict(arrival_range=(100, 50)), "arrival_range"),
    (dict(arrival_range=(0, 300)), "arrival_range"),
    (dict(event_length=400), "arrival_range"),
    (dict(noise=-1.0), "noise must be a non-negative number"),
    (dict(amplitude=(2.0, 1.0)), "amplitude"),
    (dict(stretch=0.5), "stretch must be a"),
    (dict(classes=["boom"]), "kind must be one of"),
    (dict(classes=[]), "at least one"),
    (dict(n=0), "n must be a positive int"),
])
def test_make_signal_events_errors(kwargs, message):
    options = dict(n=4, length=256, events_per_signal=2)
    options.update(kwargs)
    with pytest.raises(ValueError, match=message):
        data.make_signal_events(**options)


def test_event_targets_by_hand():
    labels, arrivals = np.array([[2, 0]]), np.array([[1, 8]])
    targets = data.event_targets(labels, arrivals, 14, delay=(2, 4))
    #                      t: 0  1  2  3  4  5  6  7  8  9 10 11 12 13
    np.testing.assert_array_equal(targets[0], [0, 0, 0, 3, 3, 3, 0, 0, 0, 0, 1, 1, 1, 0])
    late = data.event_targets(np.array([[1]]), np.array([[11]]), 14, delay=(2, 4))  # cut at the end
    np.testing.assert_array_equal(late[0, 12:], [0, 2])
    with pytest.raises(ValueError, match="low <= high"):
        data.event_targets(labels, arrivals, 14, delay=(4, 2))
    with pytest.raises(ValueError, match=r"\(N, E\)"):
        data.event_targets(labels[0], arrivals[0], 14)


# ------------------------------------------------------------------------ sliding windows
@given(st.integers(1, 3), st.integers(1, 30), st.integers(1, 30), st.integers(1, 7))
def test_sliding_windows_match_slicing(channels, length, size, step):
    signal = np.arange(channels * length, dtype=np.float32).reshape(channels, length)
    if size > length:
        with pytest.raises(ValueError, match="longer than the signal"):
            data.sliding_windows(signal, size, step)
        return
    windows, starts = data.sliding_windows(signal, size, step)
    expected_starts = list(range(0, length - size + 1, step))
    assert starts.tolist() == expected_starts and windows.shape == (len(expected_starts), channels, size)
    for w, s in zip(windows, starts):
        np.testing.assert_array_equal(w, signal[:, s:s + size])


def test_sliding_windows_of_a_1d_signal_and_errors():
    windows, starts = data.sliding_windows(Tensor(np.arange(5.0)), 3, 2)
    np.testing.assert_array_equal(windows[:, 0], [[0, 1, 2], [2, 3, 4]])
    np.testing.assert_array_equal(starts, [0, 2])
    with pytest.raises(ValueError, match=r"\(C, L\) or \(L,\)"):
        data.sliding_windows(np.zeros((1, 2, 3)), 2)
    with pytest.raises(ValueError, match="step must be a positive int"):
        data.sliding_windows(np.zeros(5), 2, 0)


# ----------------------------------------------------------------------------- detection
def test_threshold_runs_by_hand():
    s = np.array([0, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0, 0, 0, 1], dtype=float)
    starts, ends = data.threshold_runs(s, 0.5)
    np.testing.assert_array_equal(starts, [1, 5, 7, 13])
    np.testing.assert_array_equal(ends, [3, 6, 10, 14])
    starts, ends = data.threshold_runs(s, 0.5, max_gap=1)  # the one-sample dip at 6 is bridged
    np.testing.assert_array_equal(np.c_[starts, ends], [[1, 3], [5, 10], [13, 14]])
    starts, ends = data.threshold_runs(s, 0.5, min_length=2, max_gap=2)
    np.testing.assert_array_equal(np.c_[starts, ends], [[1, 10]])
    starts, ends = data.threshold_runs(np.zeros(4), 0.5)
    assert len(starts) == len(ends) == 0
    starts, ends = data.threshold_runs(np.ones(4), 0.5)  # a score at the threshold is not above it
    np.testing.assert_array_equal(np.c_[starts, ends], [[0, 4]])
    assert len(data.threshold_runs(np.full(4, 0.5), 0.5)[0]) == 0


def _runs_loop(scores, threshold, min_length, max_gap):
    runs = []
    for t, s in enumerate(scores):
        if s > threshold:
            if runs and t - runs[-1][1] <= max_gap:
                runs[-1][1] = t + 1
            else:
                runs.append([t, t + 1])
    return [r for r in runs if r[1] - r[0] >= min_length]


@given(st.lists(st.integers(0, 3), max_size=40), st.integers(1, 4), st.integers(0, 4))
def test_threshold_runs_match_a_loop(values, min_length, max_gap):
    scores = np.array(values, dtype=float)
    starts, ends = data.threshold_runs(scores, 1.5, min_length, max_gap)
    assert np.c_[starts, ends].tolist() == _runs_loop(scores, 1.5, min_length, max_gap)


def test_threshold_runs_errors():
    with pytest.raises(ValueError, match="1-D"):
        data.threshold_runs(np.zeros((2, 3)), 0.5)
    with pytest.raises(ValueError, match="finite"):
        data.threshold_runs(np.array([0.0, np.nan]), 0.5)
    with pytest.raises(ValueError, match="max_gap must be non-negative"):
        data.threshold_runs(np.zeros(3), 0.5, max_gap=-1)
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        data.threshold_runs(np.zeros(3), float("nan"))


def test_match_events_by_hand():
    predicted = [10.0, 48.0, 52.0, 200.0]
    actual = [50, 12, 120]
    pairs, false_alarms, missed = data.match_events(predicted, actual, tolerance=5)
    # 48 and 52 are both 2 from 50: a tie, the earlier prediction wins; 10 pairs with 12
    np.testing.assert_array_equal(pairs, [[0, 1], [1, 0]])
    np.testing.assert_array_equal(false_alarms, [2, 3])
    np.testing.assert_array_equal(missed, [2])
    pairs, false_alarms, missed = data.match_events([52.5, 49.0], [50], tolerance=5)
    np.testing.assert_array_equal(pairs, [[1, 0]])  # |49 - 50| = 1 beats |52.5 - 50| = 2.5
    # closest pairs first: 51-50 (1) before 47-50 (3) leaves 47 for 44; in index order 47 would
    # take 50 and strand both 51 and 44
    pairs, false_alarms, missed = data.match_events([47.0, 51.0], [50, 44], tolerance=5)
    np.testing.assert_array_equal(pairs, [[0, 1], [1, 0]])
    pairs, false_alarms, missed = data.match_events([], [3, 4], tolerance=1)
    assert pairs.shape == (0, 2) and len(false_alarms) == 0 and missed.tolist() == [0, 1]
    with pytest.raises(ValueError, match="tolerance"):
        data.match_events([1.0], [1], tolerance=-1)
    with pytest.raises(ValueError, match="finite"):
        data.match_events([np.nan], [1], tolerance=1)


@given(st.lists(st.integers(0, 60), max_size=8), st.lists(st.integers(0, 60), max_size=8), st.integers(0, 6))
def test_match_events_is_a_valid_matching(predicted, actual, tolerance):
    pairs, false_alarms, missed = data.match_events(predicted, actual, tolerance)
    assert len(set(pairs[:, 0])) == len(pairs) and len(set(pairs[:, 1])) == len(pairs)
    assert all(abs(predicted[i] - actual[j]) <= tolerance for i, j in pairs)
    assert len(pairs) + len(false_alarms) == len(predicted) and len(pairs) + len(missed) == len(actual)
    # maximal: no unmatched prediction is within tolerance of an unmatched event
    assert not any(abs(predicted[i] - actual[j]) <= tolerance for i in false_alarms for j in missed)


# ----------------------------------------------------------------------- causal convolution
# The float64 checks run on the reference kernels: what is tested is the padding, not the
# backends (tests/test_kernels_* compare those), and compiling float64 Numba kernels for a
# handful of small convolutions would cost CI more than the checks.
@pytest.fixture
def reference_kernels():
    with tc.use_backend("reference"):
        yield


def _causal_loop(x, w, b, dilation):
    n, _, length = x.shape
    k = w.shape[2]
    y = np.zeros((n, w.shape[0], length)) + b[None, :, None]
    for t in range(length):
        for i in range(k):
            s = t - dilation * (k - 1 - i)  # tap i reads d (k - 1 - i) samples into the past
            if s >= 0:
                y[:, :, t] += x[:, :, s] @ w[:, :, i].T
    return y


@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_causal_conv1d_matches_the_definition(kernel_size, dilation, length, seed):
    with tc.use_backend("reference"):
        _check_causal_conv1d(kernel_size, dilation, length, seed)


def _check_causal_conv1d(kernel_size, dilation, length, seed):
    rng = np.random.default_rng(seed)
    conv = nn.CausalConv1d(2, 3, kernel_size, dilation=dilation, dtype="float64")
    x = rng.normal(size=(2, 2, length))
    y = conv(Tensor(x)).numpy()
    assert y.shape == (2, 3, length)
    expected = _causal_loop(x, conv.weight.numpy(), conv.bias.numpy(), dilation)
    np.testing.assert_allclose(y, expected, atol=1e-10)
    # the future does not reach the past: change x after t, y up to t stays
    t = int(rng.integers(0, length))
    changed = x.copy()
    changed[..., t + 1:] += rng.normal(size=changed[..., t + 1:].shape)
    np.testing.assert_array_equal(conv(Tensor(changed)).numpy()[..., :t + 1], y[..., :t + 1])


@pytest.mark.usefixtures("reference_kernels")
def test_causal_conv1d_geometry_gradient_and_repr():
    conv = nn.CausalConv1d(3, 4, 3, stride=2, dilation=2, dtype="float64")
    assert conv.padding == ((4, 0),)
    assert conv(Tensor(np.zeros((1, 3, 9)))).shape == (1, 4, 5)  # ceil(9 / 2)
    field = theory.receptive_field([conv])[0]
    assert (field.size, field.jump, field.start) == (5, 2, -2.0)
    x = Tensor(np.random.default_rng(0).normal(size=(2, 3, 7)), requires_grad=True)
    gradcheck(lambda x, w, b: conv(x), [x, conv.weight, conv.bias])
    assert "padding=((4, 0),)" in repr(conv) and "dilation=(2,)" in repr(conv)
    with pytest.raises(ValueError, match="dilation must be positive"):
        nn.CausalConv1d(1, 1, 3, dilation=0)
    with pytest.raises(ValueError, match="kernel_size"):
        nn.CausalConv1d(1, 1, (3, 3))


def test_causal_conv_stack_structure_and_field():
    stack = nn.causal_conv_stack(2, 8, kernel_size=3, dilations=(1, 2, 4))
    kinds = [type(m).__name__ for m in stack]
    assert kinds == ["CausalConv1d", "BatchNorm1d", "ReLU"] * 3
    convs = [m for m in stack if isinstance(m, nn.CausalConv1d)]
    assert [c.dilation for c in convs] == [(1,), (2,), (4,)] and convs[0].bias is None
    assert theory.receptive_field(convs)[-1].size == 1 + 2 * (1 + 2 + 4)
    plain = nn.causal_conv_stack(1, 4, dilations=[1, 3], batch_norm=False)
    assert [type(m).__name__ for m in plain] == ["CausalConv1d", "ReLU"] * 2 and plain[0].bias is not None
    for bad in ((), "12", (1, 0)):
        with pytest.raises(ValueError, match="dilations"):
            nn.causal_conv_stack(1, 4, dilations=bad)


# ----------------------------------------------------------------------------- CausalCNN
def test_causal_cnn_is_causal_and_a_sliding_window():
    tc.manual_seed(0)
    model = models.CausalCNN(4, channels=6, dilations=(1, 2, 4, 8))
    assert model.receptive_field == 31
    x = np.random.default_rng(0).normal(size=(2, 1, 90)).astype(np.float32)
    model(Tensor(x))  # a training-mode pass gives the batch norms running statistics
    model.eval()
    with tc.no_grad():
        whole = model(Tensor(x)).numpy()
        assert whole.shape == (2, 4, 90)
        changed = x.copy()
        changed[..., 60:] = 0.0
        np.testing.assert_array_equal(model(Tensor(changed)).numpy()[..., :60], whole[..., :60])
        windows, starts = data.sliding_windows(x[1], 31, step=7)
        last = model(Tensor(np.ascontiguousarray(windows))).numpy()[:, :, -1]
    np.testing.assert_allclose(last, whole[1][:, starts + 30].T, atol=1e-5)


@pytest.mark.usefixtures("reference_kernels")
def test_causal_cnn_gradients():
    tc.manual_seed(1)
    model = models.CausalCNN(3, channels=2, dilations=(1, 2)).double()
    x = Tensor(np.random.default_rng(1).normal(size=(2, 1, 9)), requires_grad=True)
    gradcheck(lambda x, *params: model(x), [x, *model.parameters()])
    with pytest.raises(ValueError, match=r"signals \(N, C, L\)"):
        model(Tensor(np.zeros((1, 9))))
    with pytest.raises(ValueError, match="num_classes"):
        models.CausalCNN(0)


def test_summary_of_a_1d_network():
    stack = nn.Sequential(nn.CausalConv1d(1, 4, 3), nn.CausalConv1d(4, 4, 3, dilation=2))
    table = tc.summary(stack, (1, 64))
    assert [r.flops for r in table.rows] == [theory.conv_flops(1, 4, (3,), (64,)),
                                             theory.conv_flops(4, 4, (3,), (64,))]
    assert [r.receptive_field[0] for r in table.rows] == [3, 7]
