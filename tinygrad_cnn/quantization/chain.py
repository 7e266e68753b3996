"""From a float model to a chain of quantizable steps: tracing, batch-norm folding, ReLU fusion,
and the *prepared* model (float layers with fake-quantization nodes between them).

Which networks: **chains**. The model runs once on an example batch with every leaf layer
recorded; each layer must read the output of the layer before it (possibly reshaped, as by
``x.flatten(1)`` in a ``forward``). LeNet-5, AlexNet, VGG, MobileNet v1 and any
``nn.Sequential`` of supported layers are chains; residual additions and Inception's branches
are not, and are refused with the name of the layer at fault.

What happens to each layer, in order:

* ``Conv2d`` (any stride, zero padding, dilation, groups; so depthwise and 1x1 too) and
  ``Linear``: a step with real-valued weights;
* ``BatchNorm2d`` / ``BatchNorm1d`` right after one: **folded** into it, using the running
  statistics (eval mode): with f = gamma / sqrt(var + eps), w' = f w (per output channel) and
  b' = f (b - mean) + beta, so conv -> BN becomes one convolution;
* ``ReLU`` right after one: **fused** (the integer kernel clamps at the zero point), elsewhere
  its own step;
* ``AvgPool2d`` (no ceil mode), ``AdaptiveAvgPool2d`` to whole divisions of the map,
  ``GlobalAvgPool2d``, ``MaxPool2d``, ``Flatten`` and reshapes: steps of their own;
* ``Dropout`` and ``Identity``: dropped (they are the identity at inference).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tinygrad_cnn import nn, ops
from tinygrad_cnn.autograd import enable_grad
from tinygrad_cnn.nn.functional.geometry import pool_geometry
from tinygrad_cnn.quantization.fake_quant import FakeQuantConv2d, FakeQuantize, FakeQuantLinear
from tinygrad_cnn.quantization.qparams import OBSERVERS, check_bits
from tinygrad_cnn.tensor import Tensor

_DROPPED = (nn.Dropout, nn.Identity)
_WEIGHTED = ("conv", "linear")


@dataclass
class Step:
    """One operation of the traced chain. ``options`` holds the geometry: for ``conv`` stride,
    padding (top, bottom, left, right), dilation, groups; for pools kernel_size, stride,
    padding (and dilation, ceil_mode for max); for ``flatten`` the per-sample shape."""

    kind: str  # "conv", "linear", "avg_pool", "max_pool", "relu" or "flatten"
    name: str  # the float model's layer (dotted name), for messages
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    relu: bool = False
    options: dict = field(default_factory=dict)


class Reshape(nn.Module):
    """x -> x.reshape(N, *shape): the flattening between the convolutional and dense parts
    (the same on float and on int8 tensors)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class PreparedModel(nn.Sequential):
    """The float chain with fake quantization: the input's ``FakeQuantize``, then each step and
    (where the integer model will hold a new int8 tensor) its output's ``FakeQuantize``.
    Built by :func:`prepare` / :func:`prepare_qat`; :func:`~tinygrad_cnn.quantization.convert`
    turns it into the integer model. ``input_shape`` is the per-sample shape it was traced on."""

    def __init__(self, layers: list[nn.Module], input_shape: tuple[int, ...]) -> None:
        super().__init__(*layers)
        self.input_shape = tuple(input_shape)

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.input_shape:
            shape = ", ".join(map(str, self.input_shape))
            raise ValueError(f"{type(self).__name__}: expects inputs (N, {shape}) (the shape it was prepared "
                             f"on), got {tuple(x.shape)}")
        return super().forward(x)

    def set_fake_quant(self, enabled: bool) -> PreparedModel:
        """Switch rounding on (the fake-quantized model) or off (the float model, for calibration)."""
        for m in self.modules():
            if isinstance(m, (FakeQuantize, FakeQuantConv2d, FakeQuantLinear)):
                m.fake_quant_enabled = bool(enabled)
        return self

    def set_observers(self, enabled: bool) -> PreparedModel:
        """Let the activation ranges follow the data (in training mode) or freeze them."""
        for m in self.modules():
            if isinstance(m, FakeQuantize):
                m.observer_enabled = bool(enabled)
        return self


# ----------------------------------------------------------------------------------- tracing
def _leaf_calls(model: nn.Module, example: np.ndarray):
    """Run ``model`` (eval mode) on ``example`` recording every leaf layer's (name, module, x, y),
    in call order; returns (calls, input tensor, output tensor)."""
    calls = []
    patched = []
    for name, module in model.named_modules():
        if any(True for _ in module.children()):
            continue
        forward = module.forward

        def recorded(*args, _forward=forward, _name=name, _module=module, **kwargs):
            out = _forward(*args, **kwargs)
            calls.append((_name or type(_module).__name__, _module, args[0] if args else None, out))
            return out

        object.__setattr__(module, "forward", recorded)
        patched.append(module)
    was_training = model.training
    model.eval()
    x = Tensor(np.ascontiguousarray(example, dtype=np.float32), requires_grad=True)  # a graph to follow
    try:
        with enable_grad():
            y = model(x)
    finally:
        for module in patched:
            module.__dict__.pop("forward", None)
        model.train(was_training)
    return calls, x, y


def _reads(tensor, previous) -> str | None:
    """"same" if ``tensor`` is ``previous``, "reshape" if it is ``previous`` reshaped, else None."""
    t = tensor
    while t is not previous:
        creator = getattr(t, "_creator", None)
        if not isinstance(creator, ops.Reshape):
            return None
        t = creator.inputs[0]
    return "same" if tensor is previous else "reshape"


def _not_a_chain(name: str, module: nn.Module) -> ValueError:
    return ValueError(
        f"quantize: layer {name!r} ({type(module).__name__}) does not read the output of the layer before "
        "it: only chains of layers can be quantized (no residual additions, branches or other "
        "operations between layers in forward)")


def _fold_batch_norm(step: Step, bn, name: str) -> None:
    """w' = f w, b' = f (b - mean) + beta with f = gamma / sqrt(running_var + eps), per channel."""
    if bn.running_mean is None:
        raise ValueError(f"quantize: {name!r} ({type(bn).__name__}) has no running statistics "
                         "(track_running_stats=False) and cannot be folded into the layer before it")
    mean = bn.running_mean.numpy().astype(np.float64)
    var = bn.running_var.numpy().astype(np.float64)
    gamma = bn.weight.numpy().astype(np.float64) if bn.weight is not None else np.ones_like(mean)
    beta = bn.bias.numpy().astype(np.float64) if bn.bias is not None else np.zeros_like(mean)
    factor = gamma / np.sqrt(var + bn.eps)
    step.weight = step.weight * factor.reshape((-1,) + (1,) * (step.weight.ndim - 1))
    step.bias = (step.bias - mean) * factor + beta
    step.name += f" + {name}"


def _weighted_step(kind: str, name: str, module: nn.Module, options: dict) -> Step:
    weight = module.weight.numpy().astype(np.float64)
    bias = module.bias.numpy().astype(np.float64) if module.bias is not None else np.zeros(weight.shape[0])
    return Step(kind, name, weight, bias, options=options)


def _average_over(name: str, module: nn.Module, x: Tensor, y: Tensor) -> Step:
    """Adaptive/global average pooling as a plain average pool of the traced map size."""
    (h, w), (oh, ow) = x.shape[2:], (y.shape[2:] if y.ndim == 4 else (1, 1))
    if h % oh or w % ow:
        raise ValueError(f"quantize: {name!r} ({type(module).__name__}) averages a {h}x{w} map into "
                         f"{oh}x{ow} uneven bins; only whole divisions (e.g. global average pooling) can be "
                         "quantized")
    kernel = (h // oh, w // ow)
    return Step("avg_pool", name, options=dict(kernel_size=kernel, stride=kernel, padding=(0, 0)))


def _step_of(name: str, module: nn.Module, x: Tensor, y: Tensor, steps: list[Step]) -> list[Step]:
    """The new steps for one leaf layer (folding/fusing into ``steps[-1]`` where it applies)."""
    last = steps[-1] if steps else None
    fusable = last is not None and last.kind in _WEIGHTED and not last.relu
    if isinstance(module, (nn.BinarizedConv2d, nn.BinarizedLinear)):
        raise ValueError(f"quantize: {name!r} ({type(module).__name__}) is binarized already (1-bit weights "
                         "and activations); quantize applies to float layers")
    if isinstance(module, nn.Conv2d):
        if module.padding_mode != "zeros":
            raise ValueError(f"quantize: {name!r} uses padding_mode={module.padding_mode!r}; only zero "
                             "padding is supported")
        (top, bottom), (left, right) = module._pairs
        options = dict(stride=module.stride, padding=(top, bottom, left, right), dilation=module.dilation,
                       groups=module.groups)
        return [_weighted_step("conv", name, module, options)]
    if isinstance(module, nn.Linear):
        return [_weighted_step("linear", name, module, {})]
    if isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
        if not fusable:
            raise ValueError(f"quantize: {name!r} ({type(module).__name__}) does not follow a convolution or "
                             "dense layer directly, so it cannot be folded into one")
        _fold_batch_norm(last, module, name)
        return []
    if isinstance(module, nn.ReLU):
        if fusable:
            last.relu = True
            last.name += f" + {name}"
            return []
        return [Step("relu", name)]
    if isinstance(module, nn.MaxPool2d):
        if module.return_indices:
            raise ValueError(f"quantize: {name!r} returns indices; only plain max pooling can be quantized")
        g = pool_geometry(name, 2, None, module.kernel_size, module.stride, module.padding, module.dilation,
                          module.ceil_mode)
        return [Step("max_pool", name, options=dict(kernel_size=g.kernel, stride=g.stride, padding=g.padding,
                                                    dilation=g.dilation, ceil_mode=g.ceil_mode))]
    if isinstance(module, nn.AvgPool2d):
        g = pool_geometry(name, 2, None, module.kernel_size, module.stride, module.padding)
        kernel, stride, padding = g.kernel, g.stride, g.padding
        if module.ceil_mode or (any(padding) and not module.count_include_pad):
            raise ValueError(f"quantize: {name!r} (AvgPool2d) uses ceil_mode or count_include_pad=False; "
                             "only windows with a constant divisor can be quantized")
        return [Step("avg_pool", name, options=dict(kernel_size=kernel, stride=stride, padding=padding))]
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.GlobalAvgPool2d)):
        pooled = [_average_over(name, module, x, y)]
        if y.ndim != 4:  # GlobalAvgPool2d(flatten=True)
            pooled.append(Step("flatten", name, options=dict(shape=tuple(y.shape[1:]))))
        return pooled
    if isinstance(module, nn.Flatten):
        return [Step("flatten", name, options=dict(shape=tuple(y.shape[1:])))]
    raise ValueError(
        f"quantize: cannot quantize layer {name!r} of type {type(module).__name__}; supported: Conv2d, "
        "Linear, BatchNorm (after one of them), ReLU, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, "
        "GlobalAvgPool2d, Flatten, Dropout, Identity")


def trace_chain(model: nn.Module, example: np.ndarray) -> list[Step]:
    """The model as a list of :class:`Step` s (BN folded, ReLU fused), traced on ``example``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"quantize: model must be an nn.Module, got {type(model).__name__}")
    calls, x, y = _leaf_calls(model, example)
    steps: list[Step] = []
    previous = x
    for name, module, inp, out in calls:
        if not isinstance(inp, Tensor) or not isinstance(out, Tensor):
            raise ValueError(f"quantize: layer {name!r} ({type(module).__name__}) does not map one tensor to "
                             "one tensor")
        if isinstance(module, _DROPPED) and out is inp:
            continue
        link = _reads(inp, previous)
        if link is None:
            raise _not_a_chain(name, module)
        if link == "reshape":
            steps.append(Step("flatten", name, options=dict(shape=tuple(inp.shape[1:]))))
        if out.shape[0] != inp.shape[0]:
            raise ValueError(f"quantize: layer {name!r} changes the batch size ({inp.shape} -> {out.shape})")
        steps.extend(_step_of(name, module, inp, out, steps))
        previous = out
    link = _reads(y, previous) if isinstance(y, Tensor) else None
    if link is None:
        raise ValueError("quantize: the model's output is not the output of its last layer: only chains of "
                         "layers can be quantized (no operations after the last layer in forward)")
    if link == "reshape":
        steps.append(Step("flatten", "output", options=dict(shape=tuple(y.shape[1:]))))
    if not any(s.kind in _WEIGHTED for s in steps):
        raise ValueError("quantize: the model has no Conv2d or Linear layer to quantize")
    return steps


# --------------------------------------------------------------------------------- preparing
def _layers_of(step: Step, weight_bits: int, new_quantizer) -> list[nn.Module]:
    """The prepared model's modules for one step, with an output FakeQuantize where the integer
    model will requantize (after convolutions, dense layers and average pools)."""
    o = step.options
    if step.kind == "conv":
        return [FakeQuantConv2d(step.weight, step.bias, o["stride"], o["padding"], o["dilation"], o["groups"],
                                step.relu, weight_bits, step.name), new_quantizer()]
    if step.kind == "linear":
        return [FakeQuantLinear(step.weight, step.bias, step.relu, weight_bits, step.name), new_quantizer()]
    if step.kind == "avg_pool":
        return [nn.AvgPool2d(o["kernel_size"], o["stride"], o["padding"]), new_quantizer()]
    if step.kind == "max_pool":
        return [nn.MaxPool2d(o["kernel_size"], o["stride"], o["padding"], o["dilation"],
                             ceil_mode=o["ceil_mode"])]
    if step.kind == "relu":
        return [nn.ReLU()]
    return [Reshape(o["shape"])]


def _example(example) -> np.ndarray:
    array = example.numpy() if isinstance(example, Tensor) else np.asarray(example)
    if array.ndim < 2 or array.shape[0] == 0 or array.dtype.kind not in "fiu":
        raise ValueError(f"quantize: the example/calibration batch must be a non-empty numeric batch "
                         f"(N, ...), got shape {array.shape} and dtype {array.dtype}")
    return array[:2].astype(np.float32)  # two samples are enough to trace the layers


def prepare(model: nn.Module, example, *, weight_bits: int = 8, activation_bits: int = 8,
            observer: str = "minmax", percentile: float = 99.99,
            averaging_constant: float = 0.01) -> PreparedModel:
    """The :class:`PreparedModel` of ``model`` (a float chain, traced on the ``example`` batch),
    with fake quantization on. Post-training quantization calibrates it
    (:func:`~tinygrad_cnn.quantization.calibrate`); quantization-aware training trains it.

    ``observer`` chooses how activation ranges are found (``"minmax"``, ``"percentile"`` with
    ``percentile``, ``"moving_average"`` with ``averaging_constant``). The model itself is not
    changed: the prepared model has its own copies of the (folded) weights.
    """
    weight_bits = check_bits("prepare", "weight_bits", weight_bits)
    activation_bits = check_bits("prepare", "activation_bits", activation_bits)
    if observer not in OBSERVERS:
        raise ValueError(f"prepare: observer must be one of {OBSERVERS}, got {observer!r}")
    example = _example(example)
    steps = trace_chain(model, example)

    def new_quantizer() -> FakeQuantize:
        return FakeQuantize(activation_bits, observer, percentile, averaging_constant)

    layers: list[nn.Module] = [new_quantizer()]
    for step in steps:
        layers.extend(_layers_of(step, weight_bits, new_quantizer))
    return PreparedModel(layers, example.shape[1:])


def prepare_qat(model: nn.Module, example, *, bits: int = 8, weight_bits: int | None = None,
                activation_bits: int | None = None, averaging_constant: float = 0.01) -> PreparedModel:
    """The prepared model for **quantization-aware training**, in training mode: fake
    quantization on, activation ranges followed by moving averages. Train it like any model
    (its Parameters are the folded weights: batch-norm statistics are frozen at their values in
    ``model``), then :func:`~tinygrad_cnn.quantization.convert` it. ``bits`` sets both widths
    unless ``weight_bits`` / ``activation_bits`` are given."""
    weight_bits = bits if weight_bits is None else weight_bits
    activation_bits = bits if activation_bits is None else activation_bits
    prepared = prepare(model, example, weight_bits=weight_bits, activation_bits=activation_bits,
                       observer="moving_average", averaging_constant=averaging_constant)
    return prepared.train()


def fan_in(layer: FakeQuantConv2d | FakeQuantLinear) -> int:
    """Products summed per output value: (C / groups) KH KW, or the input features."""
    return math.prod(layer.weight.shape[1:])
