"""``tinygrad_cnn.quantization``: int8 (and 2-8 bit) inference of trained networks.

Post-training quantization, in one call::

    from tinygrad_cnn import quantization
    int8_model = quantization.quantize(model, calibration_images)       # min/max ranges
    int8_model = quantization.quantize(model, calibration_images, method="percentile")
    logits = int8_model(Tensor(images))                                # int8 inside
    quantization.model_size_bytes(int8_model)                           # about 1/4 of the float model

Quantization-aware training (fake quantization with the straight-through estimator)::

    qat = quantization.prepare_qat(model, example_images, bits=4)     # trainable, in float
    Trainer(qat, optim.Adam(qat.parameters(), 1e-3)).fit(...)
    int4_model = quantization.convert(qat)

The scheme (TFLite's int8 scheme): weights symmetric per output channel, activations affine
per tensor, int32 accumulation, fixed-point requantization between layers, batch norm folded
and ReLU fused. ``qparams`` holds the arithmetic of scales and zero points, ``fake_quant`` the
straight-through estimator, ``chain`` the tracing of a float model, ``modules`` the integer
layers and ``convert`` the conversion; the integer kernels are the ``quantized`` family of
``tinygrad_cnn.kernels`` (a numpy reference and a Numba version that agree exactly).
"""

from tinygrad_cnn.quantization.chain import PreparedModel, Reshape, Step, prepare, prepare_qat, trace_chain
from tinygrad_cnn.quantization.convert import calibrate, convert, model_size_bytes, quantize
from tinygrad_cnn.quantization.fake_quant import (
    FakeQuantConv2d,
    FakeQuantize,
    FakeQuantizeFunction,
    FakeQuantLinear,
    fake_quantize,
    fake_quantize_weight,
)
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
from tinygrad_cnn.quantization.qparams import (
    QParams,
    affine_qparams,
    quantize_multiplier,
    quantize_weight,
    symmetric_weight_scales,
)

__all__ = [
    "quantize", "prepare", "prepare_qat", "calibrate", "convert", "model_size_bytes", "trace_chain", "Step",
    "PreparedModel", "Reshape", "FakeQuantize", "FakeQuantizeFunction", "FakeQuantConv2d", "FakeQuantLinear",
    "fake_quantize", "fake_quantize_weight", "Quantize", "DeQuantize", "QuantizedConv2d", "QuantizedLinear",
    "QuantizedAvgPool2d", "QuantizedMaxPool2d", "QuantizedReLU", "QuantizedModel", "QParams",
    "affine_qparams", "quantize_multiplier", "quantize_weight", "symmetric_weight_scales",
]
