"""Every model of the zoo: its gradients against finite differences, its backends against each other.

For each model of ``models.list_models()`` (tests/zoo.py: the same architecture with few
channels, a tiny float64 input, biases and batch-norm statistics moved off their initial
values), in eval and in train mode, on the reference backend:

* L = <model(x), c> for a random cotangent c, and ``backward()`` gives dL/dx and dL/dp for
  every parameter p;
* each is checked by directional derivatives, (L(v + h u) - L(v - h u)) / 2h, two forward
  passes per direction u, no autograd involved: one direction moves the input only; the
  others move the input and every parameter at once, each tensor's part of u scaled by
  1 / |its gradient| so that every tensor (a bias of 3 numbers as much as a dense layer of
  millions) contributes about equally and a wrong gradient anywhere shows;
* the Numba and Cython backends give the same output and the same gradients as the
  reference backend (|difference| <= 1e-8 |reference| for each tensor, in float64), in both
  modes where the model has batch norm, in train mode otherwise (the modes then differ only
  in dropout, which runs no kernel).

Dropout draws the same masks in every pass (the generator is re-seeded before each one). A
model with several outputs (GoogLeNet's auxiliary classifiers in train mode) is checked on
their concatenation.

Binarized networks compute with sign(u), whose derivative is 0 wherever it exists: their loss
is piecewise constant in every tensor before the last sign, and backward() gives the
straight-through estimate (STE) instead, dL/du = dL/d sign(u) * 1_{|u| <= 1}. For them
(STRAIGHT_THROUGH):

* the true gradient, where there is one (the parameters after the last sign), against finite
  differences;
* every other tensor moved at once by a small step leaves L exactly as it was (its true
  gradient is 0: the STE is not that gradient);
* the STE itself against finite differences of the *surrogate* network in which each sign(u)
  is replaced by sign(u0) + clip(u, -1, 1) - clip(u0, -1, 1), u0 being the value the sign saw
  at the point of the check: the same forward value there, and 1_{|u| < 1} its true
  derivative, so its gradient is what the STE claims. This covers the parameters whose path
  to the loss meets no max pool of integer sums: such a pool (after a binarized convolution)
  has tied maxima, where the STE is a choice of convention (PyTorch's, the first maximum),
  not a derivative; tests/parity/test_parity_models.py checks those gradients against the
  same STE written with torch.autograd;
* the backends against each other, as for every model.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import settings

import tinygrad_cnn as tc
from tests import zoo
from tinygrad_cnn import Tensor, models, nn
from tinygrad_cnn.nn import binarized

# joint directions per model and mode: 1 (dev), 2 (ci), 8 (thorough)
JOINT_DIRECTIONS = min(8, max(1, settings.default.max_examples // 20))
THOROUGH = os.environ.get("TINYGRAD_CNN_HYPOTHESIS_PROFILE") == "thorough"
REQUIRE_COMPILED = os.environ.get("TINYGRAD_CNN_REQUIRE_COMPILED") == "1"
COMPILED = ("numba", "cython")

# the models with signs (module names as state_dict prefixes): the parameters after the last
# sign (a true gradient) and those whose straight-through path meets no max pool of integer sums
STRAIGHT_THROUGH = {
    "binarized_lenet": {"after the last sign": ("classifier.4.",),
                        "after the last pool": ("features.5.", "classifier.")},
}


def forward(model, x: Tensor) -> Tensor:
    """model(x), several outputs concatenated along the features."""
    out = model(x)
    return tc.cat(list(out), 1) if isinstance(out, tuple) else out


def loss_and_gradients(model, x: Tensor, cotangent: np.ndarray | None, rng):
    """L = <model(x), c> (c drawn from ``rng`` if None) and the gradients of L w.r.t. x and
    every parameter (autograd). Returns (output, c, gradients)."""
    tensors = [x, *model.parameters()]
    for t in tensors:
        t.grad = None
    tc.manual_seed(0)
    out = forward(model, x)
    if cotangent is None:
        cotangent = rng.standard_normal(out.shape)
    (out * Tensor(cotangent)).sum().backward()
    grads = [np.zeros(t.shape) if t.grad is None else t.grad.numpy() for t in tensors]
    return out.numpy(), cotangent, grads


def loss_at(model, tensors, bases, direction, step, cotangent, buffers: dict | None = None) -> float:
    """L with every tensor moved to base + step * direction (no autograd). ``buffers`` keeps
    the moved arrays between calls (a fresh 300 MB array per pass costs more than the pass)."""
    buffers = {} if buffers is None else buffers
    for i, (t, base, u) in enumerate(zip(tensors, bases, direction)):
        if u is None:
            continue
        moved = buffers.setdefault(i, np.empty_like(base))
        np.multiply(u, step, out=moved)
        t.data = np.add(moved, base, out=moved)
    try:
        with tc.no_grad():
            tc.manual_seed(0)
            return float((forward(model, tensors[0]).numpy() * cotangent).sum())
    finally:
        for t, base in zip(tensors, bases):
            t.data = base


def normal(rng, shape) -> np.ndarray:
    """Random normal entries (float32 draws: twice as fast). A tensor of millions (AlexNet's
    dense layers) repeats a block of 2^20 draws: any fixed direction is as good a test of a
    directional derivative, and drawing 57 million numbers per direction is not."""
    size = int(np.prod(shape))
    block = rng.standard_normal(min(size, 2**20), dtype=np.float32)
    return np.resize(block, size).reshape(shape).astype(np.float64)


def input_direction(grads, rng):
    return [normal(rng, grads[0].shape)] + [None] * (len(grads) - 1)


def joint_direction(grads, rng, moving=None):
    """Every tensor moves (every one with ``moving[i]``, None for the others), its part scaled by
    1 / |its gradient| (at most 1000 times the smallest scale), so that each contributes about
    equally to the directional derivative."""
    moving = [True] * len(grads) if moving is None else moving
    norms = [float(np.linalg.norm(g)) for g in grads]
    floor = 1e-3 * max(n for n, m in zip(norms, moving) if m)
    return [normal(rng, g.shape) / max(n, floor) if m else None for g, n, m in zip(grads, norms, moving)]


def directional_mismatch(model, tensors, grads, u, cotangent, rounding: float):
    """None if autograd and the finite differences agree along u, else a message, or "kink"
    if the difference quotients at three step sizes disagree among themselves: a kink of a
    relu, max or pooling within a step of the point, where they are not the derivative.
    (Moving every weight of a large network at once crosses a few kinks at 1e-6 already;
    at 1e-8 float64 still resolves the derivative of a tiny network.)

    Tolerance: 1e-6 of sum |g * u| (the size of the terms of the directional derivative)
    plus ``rounding``, the rounding error of the loss (about 1e-13 of sum |output * c|),
    divided by the step."""
    bases = [t.data for t in tensors]
    analytic = size = 0.0
    for g, d in zip(grads, u):
        if d is not None:
            products = g * d
            analytic += float(products.sum())
            size += float(np.abs(products, out=products).sum())
    largest = max(float(np.abs(d).max()) for d in u if d is not None)
    estimates, buffers = [], {}
    for step in (1e-6, 1e-7, 1e-8):  # no element moves by more than `step`
        h = step / largest
        estimates.append((loss_at(model, tensors, bases, u, h, cotangent, buffers)
                          - loss_at(model, tensors, bases, u, -h, cotangent, buffers)) / (2 * h))
        if abs(analytic - estimates[-1]) <= 1e-6 * size + rounding / h:
            return None
    if max(estimates) - min(estimates) > 1e-5 * size + rounding / h:
        return "kink"
    return f"autograd's directional derivative {analytic:.12g}, finite differences {estimates}"


def check_finite_differences(model, x: Tensor, out, cotangent, grads, rng, name: str, plan=None) -> None:
    """The directional derivatives of ``plan`` ((what, draw a direction) pairs; by default the
    input, then joint directions) against finite differences."""
    tensors = [x, *model.parameters()]
    rounding = 1e-13 * float(np.abs(out * cotangent).sum())
    if plan is None:
        # fewer joint directions for the full-size ImageNet networks (each pass costs a second)
        joint = JOINT_DIRECTIONS if model.num_parameters() < 10**6 else max(1, JOINT_DIRECTIONS // 2)
        plan = [("the input", input_direction)] + [(f"joint direction {k}", joint_direction)
                                                   for k in range(joint)]
    for what, draw in plan:
        for _ in range(3):  # a direction that crosses a kink is replaced by another one
            mismatch = directional_mismatch(model, tensors, grads, draw(grads, rng), cotangent, rounding)
            if mismatch != "kink":
                break
        assert mismatch is None, f"{name}, {what}: {mismatch}"


class StraightThroughSurrogate:
    """The network whose true gradient at a point v0 is the straight-through estimate: every
    sign(u) replaced by sign(u0) + clip(u, -1, 1) - clip(u0, -1, 1), with u0 the value the i-th
    sign of a forward pass saw at v0 (recorded by :meth:`record`). Call it as the model."""

    def __init__(self, model, monkeypatch):
        self.model, self.offsets, self.calls = model, [], 0
        self.monkeypatch = monkeypatch

    def record(self, x: Tensor) -> None:
        """One forward pass at v0 with the true signs, noting what each one saw."""
        true_sign = binarized.binarize

        def recording(u):
            u0 = u.numpy()
            self.offsets.append(np.where(u0 >= 0, 1.0, -1.0) - np.clip(u0, -1.0, 1.0))
            return true_sign(u)

        with self.monkeypatch.context() as patch, tc.no_grad():
            patch.setattr(binarized, "binarize", recording)
            tc.manual_seed(0)
            forward(self.model, x)

    def parameters(self):
        return self.model.parameters()

    def sign(self, u: Tensor) -> Tensor:
        offset = self.offsets[self.calls]
        self.calls += 1
        return Tensor(offset) + u.clamp(-1.0, 1.0)

    def __call__(self, x: Tensor):
        self.calls = 0
        with self.monkeypatch.context() as patch:
            patch.setattr(binarized, "binarize", self.sign)
            out = self.model(x)
        assert self.calls == len(self.offsets), "the surrogate saw another number of signs"
        return out


def check_straight_through(model, x: Tensor, out, cotangent, grads, rng, name: str, groups: dict,
                           monkeypatch) -> None:
    """The checks of a binarized network (module docstring): true gradients after the last
    sign, a loss constant in everything before it, the STE against its surrogate network
    (``groups``: the model's entry of STRAIGHT_THROUGH)."""
    names = ["the input"] + [n for n, _ in model.named_parameters()]
    tensors = [x, *model.parameters()]
    after_sign = [n.startswith(groups["after the last sign"]) for n in names]
    after_pool = [n.startswith(groups["after the last pool"]) for n in names]
    assert any(after_sign) and any(after_pool) and not all(after_pool), "no parameter matches the prefixes"
    check_finite_differences(model, x, out, cotangent, grads, rng, f"{name}, after the last sign",
                             [("the true gradient", lambda g, r: joint_direction(g, r, after_sign))])
    # a step of 1e-7 in the input and every tensor before the last sign flips no sign: L stays put
    u = [None if m else normal(rng, t.shape) for t, m in zip(tensors, after_sign)]
    h = 1e-7 / max(float(np.abs(d).max()) for d in u if d is not None)
    bases = [t.data for t in tensors]
    moved = [loss_at(model, tensors, bases, u, step, cotangent) for step in (-h, 0.0, h)]
    assert moved[0] == moved[1] == moved[2], f"{name}: a step of 1e-7 before the last sign moved L: {moved}"
    assert np.abs(np.concatenate([g.ravel() for g, m in zip(grads, after_sign) if not m])).max() > 0, (
        f"{name}: the straight-through estimate reaches no tensor before the last sign")
    surrogate = StraightThroughSurrogate(model, monkeypatch)
    surrogate.record(x)
    with tc.no_grad():  # the same network at the point of the check
        tc.manual_seed(0)
        np.testing.assert_allclose(forward(surrogate, x).numpy(), out, rtol=1e-12, atol=1e-12)
    check_finite_differences(surrogate, x, out, cotangent, grads, rng, f"{name}, straight-through surrogate",
                             [(f"joint direction {k}", lambda g, r: joint_direction(g, r, after_pool))
                              for k in range(JOINT_DIRECTIONS)])


def compiled_backends():
    for backend in COMPILED:
        try:
            with tc.use_backend(backend):
                pass
        except RuntimeError as error:
            if REQUIRE_COMPILED:
                pytest.fail(f"TINYGRAD_CNN_REQUIRE_COMPILED=1 but {error}")
            continue
        yield backend


def has_batch_norm(model) -> bool:
    return any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in model.modules())


@pytest.mark.parametrize("name", zoo.CHECKED)
def test_model_gradients_match_finite_differences_and_backends_agree(name, monkeypatch):
    if name in zoo.FULL_SIZE_ONLY and not THOROUGH:
        pytest.skip(f"{name} is checked at full size under the thorough profile only: "
                    f"{zoo.FULL_SIZE_ONLY[name]}")
    model = zoo.tiny_model(name)
    signs = any(isinstance(m, (nn.BinarizedConv2d, nn.BinarizedLinear)) for m in model.modules())
    assert signs == (name in STRAIGHT_THROUGH), f"{name}: binarized layers and STRAIGHT_THROUGH disagree"
    norm = has_batch_norm(model)
    # train-mode batch norm needs a batch; without it one image does (AlexNet's and VGG's cost)
    x = Tensor(zoo.tiny_input(name, batch=2 if norm else 1), requires_grad=True)
    rng = np.random.default_rng(7)
    for training in (False, True):
        model.train(training)
        mode = f"{name} ({'train' if training else 'eval'} mode)"
        with tc.use_backend("reference"):
            reference = loss_and_gradients(model, x, None, rng)
            cotangent = reference[1]
            out, grads = reference[0], reference[2]
            if signs:
                check_straight_through(model, x, out, cotangent, grads, rng, mode, STRAIGHT_THROUGH[name],
                                       monkeypatch)
            else:
                check_finite_differences(model, x, out, cotangent, grads, rng, mode)
        # without batch norm the modes differ only in dropout, which calls no kernel
        for backend in compiled_backends() if norm or training else ():
            with tc.use_backend(backend):
                got = loss_and_gradients(model, x, cotangent, rng)
            names = ["the output"] + [f"the gradient of {n}" for n in ["the input"] + [
                n for n, _ in model.named_parameters()]]
            # a gradient that is 0 in exact arithmetic (a bias before batch norm) is what rounding
            # leaves of a cancelling sum, whose terms are of the size of the model's other
            # gradients: its floor scales with the largest of them (mobilenet_v2_small: a bias
            # gradient of 8e-13 beside others up to 4e3 differed by 1.4e-12 on another CPU)
            floor = max(1e-12, 1e-14 * max(float(np.linalg.norm(r)) for r in reference[2]))
            for what, g, r in zip(names, [got[0], *got[2]], [reference[0], *reference[2]]):
                error, size = float(np.linalg.norm(g - r)), float(np.linalg.norm(r))
                assert error <= 1e-8 * size + floor, (
                    f"{mode}, {what} on {backend}: |difference| {error:.3g} for |reference| {size:.3g}")


@pytest.mark.parametrize("name", zoo.SHRUNK)
def test_tiny_models_have_the_layout_of_the_named_model(name):
    assert zoo.layout_difference(name) == []


def test_the_layout_sees_a_residual_join_that_a_width_adds():
    # MobileNetV2 at width 0.25: the stem and the first block both have 8 maps, so that block
    # (stride 1) adds its input, which the named model's (32 -> 16 maps) cannot: the layouts differ there
    thin = zoo.layout(models.mobilenet_v2(zoo.CLASSES, width_mult=0.25))
    named = zoo.layout(zoo.named_model("mobilenet_v2"))
    assert [a[0] for a, b in zip(thin, named) if a != b] == ["features.1"]


def test_the_zoo_covers_every_model():
    assert sorted(zoo.TINY) == models.list_models()
