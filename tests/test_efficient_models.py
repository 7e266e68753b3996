"""MobileNetV2, GoogLeNet and Xception: published parameter counts, torchvision's / Keras's
structure and names, forward shapes at small inputs, and gradient checks of the small variants
(finite differences in float64 on the reference kernels). Where torch and torchvision are
installed, torchvision's randomly initialised state dicts load strictly and give the same outputs.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_cnn as tc
from tests.test_models import count, run
from tinygrad_cnn import Tensor, models, nn
from tinygrad_cnn.models.mobilenet_v2 import CIFAR_SETTING
from tinygrad_cnn.testing import gradcheck


# -------------------------------------------------------------------------------- full size
def test_mobilenet_v2_count_names_and_blocks():
    model = models.mobilenet_v2()
    assert count(model) == 3_504_872  # torchvision
    blocks = [m for m in model.features if isinstance(m, models.InvertedResidual)]
    assert len(blocks) == 17 and sum(b.use_res_connect for b in blocks) == 10
    keys = model.state_dict().keys()
    for key in ("features.0.0.weight", "features.0.1.running_var", "features.1.conv.0.0.weight",
                "features.1.conv.1.weight", "features.1.conv.2.bias", "features.2.conv.1.0.weight",
                "features.2.conv.3.num_batches_tracked", "features.18.0.weight", "classifier.1.weight"):
        assert key in keys, key
    depthwise = model.features[2].conv[1][0]
    assert depthwise.groups == depthwise.in_channels == 96 and depthwise.stride == (2, 2)
    assert models.make_divisible(32 * 0.35) == 16 and models.make_divisible(1280 * 1.4) == 1792
    assert run(models.mobilenet_v2(num_classes=7, width_mult=0.25), (3, 32, 32), batch=1).shape == (1, 7)


def test_googlenet_count_names_and_aux_heads():
    model = models.googlenet()
    assert count(model) == 6_624_904  # torchvision, without the auxiliary classifiers
    assert all(m.eps == 0.001 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert model.inception3a.branch3[1].conv.kernel_size == (3, 3)  # torchvision's 3x3 "5x5" branch
    with_aux = models.googlenet(aux_logits=True)
    assert count(with_aux) == 13_004_888
    keys = with_aux.state_dict().keys()
    for key in ("conv1.conv.weight", "conv1.bn.running_mean", "inception3a.branch1.conv.weight",
                "inception4e.branch4.1.bn.weight", "inception5b.branch3.1.conv.weight",
                "aux1.conv.conv.weight", "aux2.fc1.bias", "aux1.fc2.weight", "fc.weight"):
        assert key in keys, key
    small = models.googlenet(num_classes=5, aux_logits=True, dropout=0.0)
    small.train()
    x = Tensor(np.random.default_rng(1).random((2, 3, 32, 32)).astype(np.float32))
    with tc.no_grad():
        out = small(x)
    assert isinstance(out, models.GoogLeNetOutputs) and [o.shape for o in out] == [(2, 5)] * 3
    assert run(small, (3, 32, 32), batch=1).shape == (1, 5)  # evaluation: the logits only


def test_xception_count_and_keras_structure():
    model = models.xception()
    assert count(model) == 22_855_952  # Keras's trainable parameters
    statistics = sum(b.numel() for name, b in model.named_buffers() if "running" in name)
    assert count(model) + statistics == 22_910_480  # Keras's total, moving statistics included
    separable = [name for name, m in model.named_modules() if isinstance(m, nn.SeparableConv2d)]
    assert len(separable) == 34 and separable[:3] == ["block2.sepconv1", "block2.sepconv2", "block3.sepconv1"]
    assert separable[-2:] == ["block14_sepconv1", "block14_sepconv2"]
    assert all(m.depthwise.bias is None and m.pointwise.bias is None for m in model.modules()
               if isinstance(m, nn.SeparableConv2d))
    assert isinstance(model.block2.sepconv1_act, nn.Identity)  # block 2 starts without a ReLU
    assert isinstance(model.block3.sepconv1_act, nn.ReLU)
    assert "block13.residual.weight" in model.state_dict() and "predictions.bias" in model.state_dict()
    # 299 -> 149 -> 147 (unpadded stem), then TensorFlow's "same" pools: ceil(H / 2) each time
    size, sizes = 147, []
    pool = models.MaxPool2dSame(3, 2)
    for _ in range(4):
        top, bottom = pool._pads(size)
        size = (size + top + bottom - 3) // 2 + 1
        sizes.append(size)
    assert sizes == [74, 37, 19, 10]
    assert run(models.xception(num_classes=3), (3, 71, 71), batch=1).shape == (1, 3)  # Keras's smallest input


def test_same_max_pool_pads_the_odd_pixel_after_with_minus_infinity():
    x = -np.random.default_rng(2).random((1, 2, 4, 5)) - 1.0  # all negative: zero padding would win
    y = models.MaxPool2dSame(3, 2)(Tensor(x)).numpy()
    assert y.shape == (1, 2, 2, 3)  # ceil(4 / 2), ceil(5 / 2)
    # rows: total padding (2 - 1) * 2 + 3 - 4 = 1 -> (0, 1); columns: (3 - 1) * 2 + 3 - 5 = 2 -> (1, 1)
    padded = np.pad(x, ((0, 0), (0, 0), (0, 1), (1, 1)), constant_values=-np.inf)
    expected = np.array([[[padded[0, c, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max() for j in range(3)]
                          for i in range(2)] for c in range(2)])
    np.testing.assert_array_equal(y[0], expected)


@pytest.mark.parametrize("name", ["mobilenet_v2_small", "googlenet_small", "xception_small"])
def test_small_variants_are_registered_and_fit_cifar_images(name):
    assert name in models.list_models() and models.INPUT_SHAPES[name] == (3, 32, 32)
    model = models.get_model(name, num_classes=4, in_channels=1)
    assert run(model, (1, 32, 32), batch=2).shape == (2, 4)
    assert count(model) < 1_000_000


# ----------------------------------------------------------------------------- gradient checks
def _randomise_batch_norms(model, seed: int) -> None:
    """Batch norms that are not the identity: random gamma, beta and running statistics."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data[...] = rng.uniform(0.5, 1.5, c)
            m.bias.data[...] = rng.uniform(-0.2, 0.2, c)
            m.running_mean.data[...] = rng.uniform(-0.2, 0.2, c)
            m.running_var.data[...] = rng.uniform(0.5, 2.0, c)


@pytest.mark.parametrize("build, shape", [
    (lambda: models.MobileNetV2(3, 0.25, CIFAR_SETTING[:4], in_channels=2, stem_stride=1, last_channel=16),
     (2, 8, 8)),
    (lambda: models.GoogLeNet(3, aux_logits=True, in_channels=2, width=1 / 16, small_input=True), (2, 8, 8)),
    (lambda: models.Xception(3, in_channels=2, width=1 / 32, middle_blocks=1, small_input=True), (2, 8, 8)),
], ids=["mobilenet_v2", "googlenet", "xception"])
def test_small_variants_gradients_against_finite_differences(build, shape):
    # Evaluation mode: batch norm with (random) running statistics is smooth, while batch statistics
    # of these thin layers can sit exactly on a ReLU kink (a channel that is constant over the batch
    # is normalized to exactly 0); training-mode batch norm has its own gradient tests.
    tc.manual_seed(0)
    model = build().double()
    _randomise_batch_norms(model, 1)
    model.eval()
    params = [p for _, p in model.named_parameters()]
    chosen = [params[0], params[len(params) // 2], params[-1]]  # first conv, a middle layer, the classifier
    x = Tensor(np.random.default_rng(5).normal(size=(2, *shape)), requires_grad=True)
    with tc.use_backend("reference"):
        assert gradcheck(lambda x, *_: model(x), [x, *chosen], n_directions=2, atol=1e-6, rtol=1e-4)
        aux = getattr(model, "aux1", None)
        if aux is not None:  # the auxiliary head (its own path, only run in training mode)
            features = Tensor(np.random.default_rng(6).normal(size=(2, aux.conv.conv.in_channels, 4, 4)),
                              requires_grad=True)
            assert gradcheck(lambda f, *_: aux(f), [features, aux.fc1.weight], n_directions=2, atol=1e-6,
                             rtol=1e-4)


# ------------------------------------------------------------------------- torchvision parity
def _torchvision():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    torchvision = pytest.importorskip("torchvision", reason="torchvision is not installed")
    return torch, torchvision


def _load_strictly(ours, theirs) -> None:
    state = {key: value.detach().numpy() for key, value in theirs.state_dict().items()}
    ours.load_state_dict(state, strict=True)


@pytest.mark.parametrize("name", ["mobilenet_v2", "googlenet"])
def test_torchvision_state_dicts_load_strictly_and_agree(name):
    torch, torchvision = _torchvision()
    torch.manual_seed(0)
    if name == "mobilenet_v2":
        theirs, ours = torchvision.models.mobilenet_v2(weights=None), models.mobilenet_v2()
    else:
        theirs = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True)
        ours = models.googlenet()
    x = np.random.default_rng(0).random((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():  # running statistics of real activations (not 0 and 1): one batch, momentum 1
        for m in theirs.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = 1.0
        theirs.train()(torch.from_numpy(np.random.default_rng(1).random((4, 3, 64, 64)).astype(np.float32)))
        theirs.eval()
        expected = theirs(torch.from_numpy(x)).numpy()
    _load_strictly(ours, theirs)
    got = _eval(ours, x)
    assert np.abs(expected).max() > 1e-3  # outputs that can tell the models apart
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4 * float(np.abs(expected).max()))
    if name == "googlenet":
        _load_strictly(models.googlenet(aux_logits=True),
                       torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True))


def _eval(model, x):
    model.eval()
    with tc.no_grad():
        return model(Tensor(x)).numpy()
