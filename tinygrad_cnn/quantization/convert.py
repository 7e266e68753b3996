"""Post-training quantization: calibrate a prepared model, then convert it to integers.

    quantize(model, batches)  =  convert(calibrate(prepare(model, batches[0]), batches))

* ``prepare`` traces the float model into a chain (BN folded, ReLU fused) with a
  ``FakeQuantize`` at every point where the integer model holds an int8 tensor;
* ``calibrate`` runs a few batches through it in float, so each observer records the range of
  its activations (min/max, or percentiles);
* ``convert`` turns every step into its integer layer: weights quantized symmetrically per
  output channel, biases to int32, and the requantization multipliers
  M[k] = s_x s_w[k] / s_y as fixed-point (multiplier, shift) pairs.

``convert`` also converts a model trained with quantization-aware training (``prepare_qat``):
its ranges were learned during training instead of calibrated.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from tinygrad_cnn import nn
from tinygrad_cnn.autograd import no_grad
from tinygrad_cnn.quantization.chain import PreparedModel, Reshape, fan_in, prepare
from tinygrad_cnn.quantization.fake_quant import FakeQuantConv2d, FakeQuantize, FakeQuantLinear
from tinygrad_cnn.quantization.modules import (
    DeQuantize,
    Quantize,
    QuantizedAvgPool2d,
    QuantizedConv2d,
    QuantizedLinear,
    QuantizedMaxPool2d,
    QuantizedModel,
    QuantizedReLU,
)
from tinygrad_cnn.quantization.qparams import OBSERVERS, QParams, quantize_weight
from tinygrad_cnn.tensor import Tensor

INT32_MAX = 2**31 - 1
CALIBRATION_CHUNK = 256  # an array of calibration images is run in batches of this many


def as_batches(data) -> list[np.ndarray]:
    """float32 batches from an array or Tensor (N, ...) (split into chunks), or an iterable of
    arrays, Tensors or (x, y, ...) pairs (a DataLoader)."""
    if isinstance(data, (np.ndarray, Tensor)):
        array = data.numpy() if isinstance(data, Tensor) else data
        items = [array[i:i + CALIBRATION_CHUNK] for i in range(0, len(array), CALIBRATION_CHUNK)] \
            if array.ndim >= 2 else [array]
    elif isinstance(data, Iterable):
        items = [item[0] if isinstance(item, (tuple, list)) else item for item in data]
    else:
        raise TypeError(f"quantize: calibration_batches must be an array, a Tensor or an iterable of "
                        f"batches, got {type(data).__name__}")
    batches = []
    for number, item in enumerate(items):
        array = item.numpy() if isinstance(item, Tensor) else np.asarray(item)
        if array.ndim < 2 or array.shape[0] == 0 or array.dtype.kind not in "fiu":
            raise ValueError(f"quantize: every calibration batch must be a non-empty numeric array (N, ...), "
                             f"got shape {array.shape} and dtype {array.dtype}")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            bad = np.argwhere(~np.isfinite(array))[0]
            raise ValueError(f"quantize: calibration batch {number} holds a value that is not finite "
                             f"({array[tuple(bad)]} at index {tuple(int(i) for i in bad)}): a range "
                             "cannot be calibrated from NaN or inf")
        batches.append(np.ascontiguousarray(array, dtype=np.float32))
    if not batches:
        raise ValueError("quantize: no calibration batches were given")
    return batches


def calibrate(prepared: PreparedModel, batches) -> PreparedModel:
    """Run ``batches`` through the prepared model in float (rounding off), observers on, so that
    every ``FakeQuantize`` records the range of its activations; returns the model, rounding on."""
    if not isinstance(prepared, PreparedModel):
        raise TypeError(f"calibrate: expects a PreparedModel (from prepare), got {type(prepared).__name__}")
    was_training = prepared.training
    prepared.set_fake_quant(False).set_observers(True).train()
    try:
        with no_grad():
            for batch in as_batches(batches):
                prepared(Tensor(batch))
    finally:
        prepared.set_fake_quant(True).train(was_training)
    return prepared


def _check_accumulator(layer: FakeQuantConv2d | FakeQuantLinear, x_q: QParams, weight_q: np.ndarray,
                       bias_q: np.ndarray) -> None:
    """No int32 sum of this layer can overflow: fan_in * max|x - z| * max|w_q| + |b_q| <= 2^31 - 1."""
    largest_x = max(x_q.qmax - x_q.zero_point, x_q.zero_point - x_q.qmin)
    largest_w = np.abs(weight_q.reshape(weight_q.shape[0], -1).astype(np.int64)).max(axis=1)
    bound = fan_in(layer) * largest_x * largest_w + np.abs(bias_q)
    if bound.max() > INT32_MAX:
        raise ValueError(f"quantize: layer {layer.source!r} sums {fan_in(layer)} products per output; its "
                         f"int32 accumulator could overflow (bound {int(bound.max()):,} > {INT32_MAX:,})")


def _weighted(layer: FakeQuantConv2d | FakeQuantLinear, x_q: QParams, y_q: QParams) -> nn.Module:
    weight_q, scales = quantize_weight(layer.weight.numpy(), layer.weight_bits)
    bias = layer.bias.numpy().astype(np.float64)
    if isinstance(layer, FakeQuantConv2d):
        integer = QuantizedConv2d(weight_q, scales, bias, x_q, y_q, layer.stride, layer.padding,
                                  layer.dilation, layer.groups, layer.relu, layer.source)
    else:
        integer = QuantizedLinear(weight_q, scales, bias, x_q, y_q, layer.relu, layer.source)
    _check_accumulator(layer, x_q, weight_q, integer.bias.data)
    return integer


def convert(prepared: PreparedModel) -> QuantizedModel:
    """The integer model of a calibrated (or quantization-aware trained) prepared model."""
    if not isinstance(prepared, PreparedModel):
        raise TypeError(f"convert: expects a PreparedModel (from prepare or prepare_qat), got "
                        f"{type(prepared).__name__}")
    layers = list(prepared)
    current = layers[0].qparams()  # the input's quantization
    integer: list[nn.Module] = [Quantize(current)]
    i = 1
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, (FakeQuantConv2d, FakeQuantLinear, nn.AvgPool2d)):
            output = layers[i + 1]
            assert isinstance(output, FakeQuantize), "a FakeQuantize follows each requantizing step"
            y_q = output.qparams()
            if isinstance(layer, nn.AvgPool2d):
                integer.append(QuantizedAvgPool2d(layer.kernel_size, layer.stride, layer.padding, current,
                                                  y_q))
            else:
                integer.append(_weighted(layer, current, y_q))
            current = y_q
            i += 2
            continue
        if isinstance(layer, nn.MaxPool2d):
            integer.append(QuantizedMaxPool2d(layer.kernel_size, layer.stride, layer.padding, layer.dilation,
                                              layer.ceil_mode))
        elif isinstance(layer, nn.ReLU):
            integer.append(QuantizedReLU(current.zero_point))
        elif isinstance(layer, Reshape):
            integer.append(Reshape(layer.shape))
        else:
            raise TypeError(f"convert: unexpected layer {type(layer).__name__} in a prepared model")
        i += 1
    integer.append(DeQuantize(current))
    return QuantizedModel(integer, prepared.input_shape)


def quantize(model: nn.Module, calibration_batches, *, method: str = "minmax", percentile: float = 99.99,
             weight_bits: int = 8, activation_bits: int = 8) -> QuantizedModel:
    """Post-training quantization of a float chain ``model`` to an integer model.

    ``calibration_batches``: a few batches of typical inputs (an array or Tensor (N, ...), a
    list of them, or a DataLoader); their per-sample shape is the one the integer model accepts.
    ``method``: how activation ranges are calibrated, ``"minmax"`` (smallest and largest value)
    or ``"percentile"`` (the ``percentile``-th and (100 - ``percentile``)-th percentiles, robust to
    outliers). Weights: symmetric per output channel at ``weight_bits``; activations: affine per
    tensor at ``activation_bits`` (both 8 by default: int8; 2 to 8 bits are stored in int8).

    The float model is left unchanged. The result computes with int8 tensors, int32 sums and
    fixed-point requantization between layers; it takes float images and returns float logits.
    """
    if method not in OBSERVERS:
        raise ValueError(f"quantize: method must be one of {OBSERVERS}, got {method!r}")
    batches = as_batches(calibration_batches)
    prepared = prepare(model, batches[0], weight_bits=weight_bits, activation_bits=activation_bits,
                       observer=method, percentile=percentile)
    return convert(calibrate(prepared, batches))


def model_size_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer of ``model``: what a checkpoint of it stores."""
    tensors = [p for p in model.parameters()] + [b for _, b in model.named_buffers()]
    return int(sum(t.data.nbytes for t in tensors))
