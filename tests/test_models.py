"""Every model: parameter counts (published numbers or formulas written out here) and forward
shapes on tiny batches."""

import numpy as np
import pytest

import tinygrad_cnn as tc
from tinygrad_cnn import Tensor, models, nn
from tinygrad_cnn.models import vgg as vgg_module


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def run(model, shape, batch=2, device="cpu"):
    model.to(device).eval()
    with tc.no_grad():
        x = np.random.default_rng(0).random((batch, *shape)).astype(np.float32)
        return model(Tensor(x, device=device))


# ------------------------------------------------------------ counts
@pytest.mark.parametrize("name, expected", [
    ("lenet5", 61_706),
    ("resnet34", 21_797_672),   # torchvision
    ("resnet20", 269_722),      # He et al., option A shortcuts
    ("resnet32", 464_154),
    ("resnet56", 853_018),
    ("densenet121", 7_978_856),  # torchvision
    ("mobilenet_v1", 4_231_976),
])
def test_published_parameter_counts(name, expected):
    assert count(models.get_model(name)) == expected


def test_vgg_counts_without_building_the_large_classifier():
    # convolutions built for real; the 4096-wide dense layers counted by formula (in*out + out)
    classifier = (512 * 7 * 7 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)
    for depth, expected in ((11, 132_863_336), (16, 138_357_544)):
        assert count(vgg_module.make_layers(vgg_module.CONFIGS[depth])) + classifier == expected


def test_lenet5_layers_as_in_the_course_table():
    m = models.lenet5()
    convs = [l for l in m.features if isinstance(l, nn.Conv2d)]
    assert [count(c) for c in convs] == [1 * 25 * 6 + 6, 6 * 25 * 16 + 16, 16 * 25 * 120 + 120]
    x = Tensor(np.zeros((3, 1, 28, 28), np.float32))
    shapes = []
    for layer in m.features:
        x = layer(x)
        shapes.append(x.shape[1:])
    assert shapes[0] == (6, 28, 28) and shapes[2] == (6, 14, 14) and shapes[3] == (16, 10, 10)
    assert shapes[5] == (16, 5, 5) and shapes[6] == (120, 1, 1)
    assert m.classifier(x).shape == (3, 10)
    assert "features.0.weight" in m.state_dict() and "classifier.3.bias" in m.state_dict()
    with pytest.raises(ValueError, match="28, 28"):
        m(Tensor(np.zeros((1, 1, 32, 32), np.float32)))
    with pytest.raises(ValueError, match="activation"):
        models.lenet5(activation="swish")


def test_torchvision_state_dict_names():
    dense = models.densenet_small().state_dict().keys()
    assert "features.denseblock1.denselayer1.norm1.weight" in dense
    assert "features.transition1.conv.weight" in dense


def test_inception_module_counts_and_concatenates():
    module = models.Inception(192, 64, 96, 128, 16, 32, 32, batch_norm=False)  # GoogLeNet's 3a
    expected = (192 * 64 + 64) + (192 * 96 + 96) + (96 * 9 * 128 + 128) + (192 * 16 + 16) + \
        (16 * 25 * 32 + 32) + (192 * 32 + 32)
    assert count(module) == expected
    y = run(module, (192, 6, 6), batch=1)
    assert y.shape == (1, 256, 6, 6)


def test_mobilenet_block_is_cheaper_than_a_full_convolution():
    block = models.DepthwiseSeparable(32, 64)
    assert count(block) == 32 * 9 + 2 * 32 + 32 * 64 + 2 * 64
    assert count(nn.Conv2d(32, 64, 3, bias=False)) == 32 * 64 * 9


# ------------------------------------------------------------ forward shapes
@pytest.mark.parametrize("name, shape, out", [
    ("lenet5", (1, 28, 28), (10,)),
    ("alexnet_small", (3, 32, 32), (10,)),
    ("vgg11_cifar", (3, 32, 32), (10,)),
    ("resnet20", (3, 32, 32), (10,)),
    ("inception_small", (3, 32, 32), (10,)),
    ("densenet_small", (3, 32, 32), (10,)),
    ("mobilenet_small", (3, 32, 32), (10,)),
    ("unet_small", (1, 32, 32), (4, 32, 32)),
])
@pytest.mark.parametrize("batch", [1, 3])
def test_forward_shapes_any_batch(name, shape, out, batch, device):
    options = {"width": 0.25} if name == "inception_small" else {}
    if name == "vgg11_cifar":
        model = models.vgg_cifar(11, width=0.125)
    else:
        model = models.get_model(name, **options)
    y = run(model, shape, batch, device)
    assert y.shape == (batch, *out) and np.isfinite(y.numpy()).all()


def test_imagenet_layouts_forward_on_small_inputs():
    # adaptive pooling lets the ImageNet networks run on small images: a cheap full forward pass;
    # with C classes instead of 1000 the count drops by (1000 - C) (features + 1) in the last layer
    alexnet = models.alexnet(num_classes=7)
    assert count(alexnet) == 61_100_840 - (1000 - 7) * 4097  # torchvision: 61,100,840
    assert run(alexnet, (3, 64, 64), batch=1).shape == (1, 7)
    resnet = models.resnet18(num_classes=5)
    assert count(resnet) == 11_689_512 - (1000 - 5) * 513    # torchvision: 11,689,512
    assert run(resnet, (3, 32, 32), batch=2).shape == (2, 5)
    keys = resnet.state_dict().keys()
    for key in ("conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
                "layer2.0.downsample.1.running_var", "fc.bias"):
        assert key in keys
    assert run(models.mobilenet_v1(num_classes=4, width_mult=0.25), (3, 32, 32), batch=1).shape == (1, 4)


def test_alexnet_original_feature_geometry():
    from tinygrad_cnn import theory

    m = models.alexnet_original()
    assert count(m) == 60_965_224  # the paper's grouped (two-GPU) layout
    size = 227
    for layer in m.features:
        if isinstance(layer, nn.Conv2d):
            size = theory.conv_output_size(size, layer.kernel_size[0], layer.stride[0], layer.padding[0])
        elif isinstance(layer, nn.MaxPool2d):
            size = theory.pool_output_size(size, layer.kernel_size, layer.stride)
    assert size == 6 and m.classifier[1].in_features == 256 * 6 * 6
    with pytest.raises(ValueError, match="227"):
        m(Tensor(np.zeros((1, 3, 224, 224), np.float32)))


def test_local_response_norm_against_a_loop():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 7, 3, 3)).astype(np.float64)
    lrn = models.LocalResponseNorm(5, alpha=0.1, beta=0.75, k=2.0)
    got = lrn(Tensor(x)).numpy()
    expected = np.empty_like(x)
    for c in range(7):
        lo, hi = max(0, c - 2), min(7, c + 3)
        expected[:, c] = x[:, c] / (2.0 + 0.1 / 5 * (x[:, lo:hi] ** 2).sum(1)) ** 0.75
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_option_a_shortcut_subsamples_and_pads_with_zeros():
    x = np.random.default_rng(0).random((2, 4, 6, 6)).astype(np.float32)
    y = models.ShortcutA(4, 8, 2)(Tensor(x)).numpy()
    assert y.shape == (2, 8, 3, 3)
    np.testing.assert_array_equal(y[:, 2:6], x[:, :, ::2, ::2])
    assert not y[:, :2].any() and not y[:, 6:].any()


def test_models_train_a_step_and_gradients_reach_the_first_layer(device):
    model = models.resnet20(num_classes=3).to(device)
    x = Tensor(np.random.default_rng(0).random((2, 3, 32, 32)).astype(np.float32), device=device)
    loss = nn.functional.cross_entropy(model(x), np.array([0, 2]))
    loss.backward()
    assert model.conv1.weight.grad is not None and np.abs(model.conv1.weight.grad.numpy()).sum() > 0


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="unknown model 'resnet19'"):
        models.get_model("resnet19")
    with pytest.raises(ValueError, match="6n"):
        models.CifarResNet(depth=21)
    with pytest.raises(ValueError, match="divisible by 4"):
        run(models.unet_small(), (1, 30, 30))
    with pytest.raises(ValueError, match="num_classes"):
        models.resnet20(num_classes=0)
    with pytest.raises(TypeError, match="resnet20"):
        models.get_model("resnet20", colour=True)
    assert "lenet5" in models.list_models() and set(models.INPUT_SHAPES) == set(models.MODELS)
