"""Post-training quantization and quantization-aware training (``tinygrad_cnn.quantization``).

Oracles: numpy formulas written out here (rounding, clipping, batch-norm folding), the float
model itself (an int8 model must stay within a few quantization steps of it), the
reference backend against Numba on whole integer models, and the straight-through
estimator's mask computed by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn as tc
from tinygrad_cnn import Tensor, data, models, nn, optim, training
from tinygrad_cnn import quantization as Q


def rng_images(n, shape=(1, 8, 8), seed=0):
    return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)


def small_cnn(bn: bool = False) -> nn.Sequential:
    """A chain with every kind of supported step (8x8 single-channel inputs)."""
    tc.manual_seed(3)
    layers = [nn.Conv2d(1, 4, 3, padding=1)]
    layers += [nn.BatchNorm2d(4)] if bn else []
    layers += [nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=(1, 0), groups=2, stride=(1, 2)),
               nn.ReLU(), nn.AvgPool2d(2, padding=1), nn.Flatten(), nn.Linear(6 * 3 * 1, 16), nn.ReLU(),
               nn.Dropout(0.3), nn.Linear(16, 5)]
    return nn.Sequential(*layers)


def float_outputs(model, x):
    model.eval()
    with tc.no_grad():
        return model(Tensor(x)).numpy()


# ------------------------------------------------------------------------------- parameters
@given(st.floats(-50, 0), st.floats(0, 50), st.integers(2, 8))
def test_affine_range_holds_zero_exactly_and_spans_all_integers(lo, hi, bits):
    q = Q.affine_qparams(lo, hi, bits)
    assert q.qmin == -(2 ** (bits - 1)) and q.qmax == 2 ** (bits - 1) - 1
    assert q.dequantize(q.quantize(np.zeros(3)))[0] == 0.0  # the real 0 is an integer: padding stays exact
    if hi > lo:
        assert q.scale == pytest.approx((hi - lo) / (2**bits - 1))
        values = np.linspace(lo, hi, 101)
        error = np.abs(q.dequantize(q.quantize(values)) - values)
        assert error.max() <= q.scale * 0.5 + 1e-6 * max(1.0, hi - lo)  # nearest step, nothing clipped


def test_symmetric_per_channel_weights():
    w = np.array([[0.5, -1.0, 0.25], [0.001, 0.002, -0.004], [0.0, 0.0, 0.0]])
    q, scales = Q.quantize_weight(w, 8)
    np.testing.assert_allclose(scales, [1.0 / 127, 0.004 / 127, 1.0])
    np.testing.assert_array_equal(q[0], [64, -127, 32])  # round(0.5 * 127) = 64 (half to even: 63.5 -> 64)
    np.testing.assert_array_equal(q[1], [32, 64, -127])  # its own scale: the small channel keeps its detail
    np.testing.assert_array_equal(q[2], [0, 0, 0])
    q4, _ = Q.quantize_weight(w, 4)  # the restricted range [-7, 7]: 0.5 * 7 = 3.5 -> 4, 0.25 * 7 -> 2
    np.testing.assert_array_equal(q4, [[4, -7, 2], [2, 4, -7], [0, 0, 0]])


def test_percentile_observer_ignores_an_outlier_minmax_does_not():
    values = np.random.default_rng(0).normal(size=100_000)
    values[7] = 1000.0
    minmax, percentile = Q.qparams.MinMaxObserver(), Q.qparams.PercentileObserver(99.9)
    for half in (values[:50_000], values[50_000:]):
        minmax.update(half)
        percentile.update(half)
    assert minmax.range()[1] == 1000.0
    lo, hi = percentile.range()
    assert 2.5 < hi < 4 and -4 < lo < -2.5  # the 99.9th percentile of N(0, 1) is 3.09


def test_fake_quantize_forward_and_straight_through_gradient():
    qp = Q.QParams(0.1, -3, -8, 7)  # represents [-0.5, 1.0] in steps of 0.1
    x = Tensor(np.array([-0.9, -0.5, -0.04, 0.26, 1.0, 1.3]), requires_grad=True)
    y = Q.fake_quantize(x, qp)
    np.testing.assert_allclose(y.numpy(), [-0.5, -0.5, 0.0, 0.3, 1.0, 1.0], atol=1e-12)
    y.backward(np.ones(6))
    # identity inside [qmin, qmax] after rounding, zero where the value was clipped
    np.testing.assert_array_equal(x.grad.numpy(), [0, 1, 1, 1, 1, 0])


# --------------------------------------------------------------------------------- tracing
def test_batch_norm_is_folded_and_relu_fused():
    model = small_cnn(bn=True)
    model.train()
    with tc.no_grad():  # give the batch norm non-trivial running statistics
        for seed in range(3):
            model(Tensor(rng_images(16, seed=seed) * 3 + 1))
    steps = Q.trace_chain(model, rng_images(2))
    assert [s.kind for s in steps] == ["conv", "max_pool", "conv", "avg_pool", "flatten", "linear", "linear"]
    assert steps[0].relu and steps[2].relu and steps[5].relu and not steps[6].relu
    bn = model[1]
    factor = bn.weight.numpy() / np.sqrt(bn.running_var.numpy() + bn.eps)
    np.testing.assert_allclose(steps[0].weight, model[0].weight.numpy() * factor[:, None, None, None],
                               rtol=1e-6)
    np.testing.assert_allclose(steps[0].bias, (model[0].bias.numpy() - bn.running_mean.numpy()) * factor
                               + bn.bias.numpy(), rtol=1e-5, atol=1e-6)
    prepared = Q.prepare(model, rng_images(2)).set_fake_quant(False).eval()
    x = rng_images(5, seed=9)
    np.testing.assert_allclose(float_outputs(prepared, x), float_outputs(model, x), rtol=1e-4, atol=1e-5)


def test_chains_with_reshapes_in_forward_and_global_pooling_are_traced():
    # depthwise convolutions, batch norm, adaptive pooling and x.flatten(1) in forward
    model = models.mobilenet_small(num_classes=3, width_mult=0.125)
    steps = Q.trace_chain(model, rng_images(2, (3, 32, 32)))
    kinds = [s.kind for s in steps]
    assert kinds[-3:] == ["avg_pool", "flatten", "linear"] and kinds.count("conv") == 15
    assert any(s.options.get("groups", 1) > 1 for s in steps)


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.fc = nn.Linear(64, 2)

    def forward(self, x):
        return self.fc((self.conv(x) + x).flatten(1))


@pytest.mark.parametrize("model, message", [
    (Residual(), "'fc' .Linear. does not read the output"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh()), "cannot quantize layer '1' of type Tanh"),
    (nn.Sequential(nn.ReLU(), nn.Flatten()), "no Conv2d or Linear"),
    (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect")), "padding_mode='reflect'"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.BatchNorm2d(2)), "does not follow"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.AvgPool2d(2, ceil_mode=True)), "ceil_mode"),
    (nn.Sequential(nn.BinarizedConv2d(1, 2, 3)), "binarized already"),
])
def test_what_cannot_be_quantized_is_refused_clearly(model, message):
    with pytest.raises(ValueError, match=message):
        Q.quantize(model, rng_images(4))


def test_operations_after_the_last_layer_are_refused():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x) * 2.0

    with pytest.raises(ValueError, match="not the output of its last layer"):
        Q.quantize(Scaled(), np.ones((3, 4), np.float32))


# -------------------------------------------------------------------------- integer models
def test_integer_model_follows_the_float_model_and_its_fake_quantized_twin():
    model = small_cnn(bn=True)
    calibration = rng_images(64, seed=1)
    prepared = Q.calibrate(Q.prepare(model, calibration), calibration)
    integer = Q.convert(prepared)
    assert isinstance(integer[0], Q.Quantize) and isinstance(integer[-1], Q.DeQuantize)
    assert integer[1].weight.dtype == np.int8 and integer[1].bias.dtype == np.int32
    x = rng_images(32, seed=2)
    got, fake, exact = float_outputs(integer, x), float_outputs(prepared, x), float_outputs(model, x)
    step = integer[-1].qparams.scale
    # the fake-quantized model computes the same roundings in float: at most a step or two apart
    assert np.abs(got - fake).max() <= 2.01 * step and np.mean(np.abs(got - fake) < 0.5 * step) > 0.8
    # and the int8 model stays near the float model (8 bits: error a few percent of the range)
    assert np.abs(got - exact).max() < 0.05 * (exact.max() - exact.min())
    with tc.use_backend("reference"):
        reference = float_outputs(integer, x)
    np.testing.assert_array_equal(got, reference)  # Numba and the reference: the same integers


def test_quantized_network_keeps_its_accuracy_on_digits():
    tc.manual_seed(0)
    x_train, y_train, x_test, y_test = data.load_digits()  # 8x8: a small CNN trains in a second
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                          nn.Linear(64, 10))
    trainer = training.Trainer(model, optim.Adam(model.parameters(), lr=1e-2), batch_size=32, seed=0,
                               progress=False)
    trainer.fit((x_train, y_train), epochs=3)
    float_acc = (float_outputs(model, x_test).argmax(1) == y_test).mean()
    for method in ("minmax", "percentile"):
        integer = Q.quantize(model, x_train[:256], method=method)
        int_acc = (float_outputs(integer, x_test).argmax(1) == y_test).mean()
        assert float_acc > 0.85 and int_acc >= float_acc - 0.02, (method, float_acc, int_acc)


def test_int8_lenet_takes_a_quarter_of_the_bytes():
    model = models.lenet5()
    integer = Q.quantize(model, rng_images(8, (1, 28, 28)))
    assert Q.model_size_bytes(model) == 61_706 * 4
    # int8 weights; per output channel an int32 bias and an (int32, int8) multiplier; one multiplier
    # per average pool: 61,470 + 236 * (4 + 4 + 1) + 2 * (4 + 1) bytes
    assert Q.model_size_bytes(integer) == 61_470 + 236 * 9 + 2 * 5
    assert Q.model_size_bytes(model) / Q.model_size_bytes(integer) > 3.8


def test_integer_model_state_dict_saves_and_loads(tmp_path):
    model = small_cnn()
    integer = Q.quantize(model, rng_images(16))
    tc.save(integer.state_dict(), tmp_path / "int8.npz")
    other = Q.quantize(small_cnn(), rng_images(16, seed=5))
    other.load_state_dict(tc.load(tmp_path / "int8.npz"))
    for (name, a), (_, b) in zip(integer.state_dict().items(), other.state_dict().items()):
        assert a.dtype == b.dtype and np.array_equal(a.numpy(), b.numpy()), name


def test_integer_model_argument_errors():
    integer = Q.quantize(small_cnn(), rng_images(8))
    with pytest.raises(ValueError, match=r"expects inputs \(N, 1, 8, 8\)"):
        integer(Tensor(rng_images(2, (1, 9, 9))))
    with pytest.raises(TypeError, match="int8 Tensor"):
        integer[1](Tensor(rng_images(2)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        integer(Tensor(np.full((1, 1, 8, 8), np.nan, np.float32)))
    with pytest.raises(ValueError, match="weight_bits must be an int from 2 to 8"):
        Q.quantize(small_cnn(), rng_images(8), weight_bits=9)
    with pytest.raises(ValueError, match="method must be one of"):
        Q.quantize(small_cnn(), rng_images(8), method="kl")
    with pytest.raises(ValueError, match="no calibration batches"):
        Q.quantize(small_cnn(), [])
    with pytest.raises(ValueError, match="non-empty numeric"):
        Q.quantize(small_cnn(), [np.zeros(3)])
    damaged = rng_images(8)
    damaged[3, 0, 5, 5] = np.nan
    with pytest.raises(ValueError, match=r"batch 0 holds a value that is not finite \(nan at index "
                                         r"\(3, 0, 5, 5\)\)"):
        Q.quantize(small_cnn(), damaged)
    with pytest.raises(RuntimeError, match="seen no data"):
        Q.convert(Q.prepare(small_cnn(), rng_images(2)))
    with pytest.raises(ValueError, match="percentile must be a number"):
        Q.quantize(small_cnn(), rng_images(8), method="percentile", percentile=30)


def test_calibration_batches_may_be_a_data_loader():
    x = rng_images(40)
    loader = data.DataLoader(data.TensorDataset(x, np.zeros(40, np.int64)), batch_size=16)
    a = float_outputs(Q.quantize(small_cnn(), loader), x)
    b = float_outputs(Q.quantize(small_cnn(), x), x)  # the same images in one array
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------- quantization-aware training
def test_quantization_aware_training_learns_through_the_rounding():
    tc.manual_seed(1)
    x = rng_images(64, seed=4)
    targets = (x.reshape(64, -1).mean(1) > 0.5).astype(np.int64) + 2 * (x[:, 0, 0, 0] > 0.5)
    qat = Q.prepare_qat(small_cnn(), x, bits=4, averaging_constant=0.1)
    assert qat.training and all(m.bits == 4 for m in qat if isinstance(m, Q.FakeQuantize))
    optimizer = optim.Adam(qat.parameters(), lr=1e-2)
    losses = []
    for step in range(40):
        loss = nn.functional.cross_entropy(qat(Tensor(x)), targets)
        optimizer.zero_grad()
        loss.backward()
        if step == 0:  # the straight-through estimator lets gradient through every rounding
            assert np.abs(qat[1].weight.grad.numpy()).sum() > 0
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]
    first = qat[0]
    assert first.calibrated and first.qparams().qmax == 7
    qat.eval()
    integer = Q.convert(qat)
    assert np.abs(integer[1].weight.numpy()).max() <= 7  # 4-bit weights in int8 storage
    fake, got = float_outputs(qat, x), float_outputs(integer, x)
    assert (fake.argmax(1) == got.argmax(1)).mean() >= 0.9
    step = integer[-1].qparams.scale
    assert np.abs(fake - got).max() <= 2.01 * step
