"""The layers and functional ops of the course against PyTorch's, values and gradients in float64.

Each layer is built in both libraries with the same arguments; the weights go from ours to
PyTorch's by state_dict name (strict); the output, the input's gradient and every
parameter's gradient must agree, in eval and train mode (and batch norm's running statistics
after a training step).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the PyTorch parity tests need torch (pip install torch==2.13.0)")
import torch.nn.functional as TF  # noqa: E402

import tinygrad_cnn.nn.functional as F  # noqa: E402
from tinygrad_cnn import Tensor, nn  # noqa: E402

tnn = torch.nn


class TorchSeparable(tnn.Module):
    """Depthwise (no bias) then pointwise, with tinygrad_cnn's names."""

    def __init__(self, cin, cout, k, multiplier):
        super().__init__()
        self.depthwise = tnn.Conv2d(cin, cin * multiplier, k, groups=cin, bias=False)
        self.pointwise = tnn.Conv2d(cin * multiplier, cout, 1)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


LAYERS = {
    "conv2d": (lambda: nn.Conv2d(3, 4, 3, padding=1), lambda: tnn.Conv2d(3, 4, 3, padding=1), (2, 3, 7, 6)),
    "conv2d_strided_dilated_grouped": (
        lambda: nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=2),
        lambda: tnn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=2),
        (2, 4, 9, 8)),
    "conv2d_same": (lambda: nn.Conv2d(2, 3, (3, 5), padding="same", dilation=(1, 2)),
                    lambda: tnn.Conv2d(2, 3, (3, 5), padding="same", dilation=(1, 2)), (1, 2, 6, 9)),
    "conv2d_valid_no_bias": (lambda: nn.Conv2d(2, 3, 3, padding="valid", bias=False),
                             lambda: tnn.Conv2d(2, 3, 3, padding="valid", bias=False), (2, 2, 5, 5)),
    **{f"conv2d_{mode}": (lambda mode=mode: nn.Conv2d(2, 3, 3, padding=2, padding_mode=mode),
                          lambda mode=mode: tnn.Conv2d(2, 3, 3, padding=2, padding_mode=mode), (2, 2, 5, 6))
       for mode in ("reflect", "replicate", "circular")},
    "conv1d": (lambda: nn.Conv1d(3, 4, 3, stride=2, padding=1, dilation=2),
               lambda: tnn.Conv1d(3, 4, 3, stride=2, padding=1, dilation=2), (2, 3, 11)),
    "conv_transpose2d": (
        lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, dilation=1),
        lambda: tnn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2), (2, 4, 4, 5)),
    "conv_transpose2d_upconv": (lambda: nn.ConvTranspose2d(3, 2, 2, stride=2),
                                lambda: tnn.ConvTranspose2d(3, 2, 2, stride=2), (2, 3, 3, 3)),
    "conv_transpose1d": (lambda: nn.ConvTranspose1d(2, 3, 4, stride=3, padding=1, dilation=2),
                         lambda: tnn.ConvTranspose1d(2, 3, 4, stride=3, padding=1, dilation=2), (2, 2, 5)),
    "depthwise": (lambda: nn.DepthwiseConv2d(4, 3, padding=1, depth_multiplier=2),
                  lambda: tnn.Conv2d(4, 8, 3, padding=1, groups=4), (2, 4, 5, 5)),
    "separable": (lambda: nn.SeparableConv2d(3, 5, 3, depth_multiplier=2),
                  lambda: TorchSeparable(3, 5, 3, 2), (2, 3, 6, 6)),
    "max_pool2d": (lambda: nn.MaxPool2d(3, 2, 1, ceil_mode=True),
                   lambda: tnn.MaxPool2d(3, 2, 1, ceil_mode=True), (2, 3, 8, 7)),
    "max_pool2d_dilated": (lambda: nn.MaxPool2d((2, 3), (1, 2), (1, 1), dilation=(2, 1)),
                           lambda: tnn.MaxPool2d((2, 3), (1, 2), (1, 1), dilation=(2, 1)), (2, 2, 7, 8)),
    "max_pool1d": (lambda: nn.MaxPool1d(3, 2, 1), lambda: tnn.MaxPool1d(3, 2, 1), (2, 3, 9)),
    "avg_pool2d": (lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
                   lambda: tnn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), (2, 3, 8, 7)),
    "avg_pool2d_padded": (lambda: nn.AvgPool2d((2, 3), 1, (1, 1)), lambda: tnn.AvgPool2d((2, 3), 1, (1, 1)),
                          (1, 2, 5, 6)),
    "avg_pool1d": (lambda: nn.AvgPool1d(4, 3, 2), lambda: tnn.AvgPool1d(4, 3, 2), (2, 3, 10)),
    "lp_pool2d": (lambda: nn.LPPool2d(2, 3, 2), lambda: tnn.LPPool2d(2, 3, 2), (2, 3, 8, 7)),
    "lp_pool1d": (lambda: nn.LPPool1d(3, 2), lambda: tnn.LPPool1d(3, 2), (2, 3, 9)),
    "adaptive_avg_pool2d": (lambda: nn.AdaptiveAvgPool2d((3, 2)), lambda: tnn.AdaptiveAvgPool2d((3, 2)),
                            (2, 3, 7, 5)),
    "adaptive_avg_pool2d_up": (lambda: nn.AdaptiveAvgPool2d(4), lambda: tnn.AdaptiveAvgPool2d(4),
                               (1, 2, 3, 2)),
    "adaptive_avg_pool1d": (lambda: nn.AdaptiveAvgPool1d(4), lambda: tnn.AdaptiveAvgPool1d(4), (2, 3, 9)),
    "global_avg_pool2d": (lambda: nn.GlobalAvgPool2d(flatten=True),
                          lambda: tnn.Sequential(tnn.AdaptiveAvgPool2d(1), tnn.Flatten()), (2, 3, 4, 5)),
    "batch_norm2d": (lambda: nn.BatchNorm2d(3), lambda: tnn.BatchNorm2d(3), (4, 3, 3, 2)),
    "batch_norm2d_cumulative": (lambda: nn.BatchNorm2d(3, momentum=None, eps=1e-3),
                                lambda: tnn.BatchNorm2d(3, momentum=None, eps=1e-3), (2, 3, 2, 2)),
    "batch_norm1d": (lambda: nn.BatchNorm1d(5), lambda: tnn.BatchNorm1d(5), (6, 5)),
    "batch_norm1d_sequence": (lambda: nn.BatchNorm1d(3, momentum=0.3),
                              lambda: tnn.BatchNorm1d(3, momentum=0.3), (2, 3, 4)),
    "linear": (lambda: nn.Linear(5, 3), lambda: tnn.Linear(5, 3), (2, 4, 5)),
    "linear_no_bias": (lambda: nn.Linear(5, 3, bias=False), lambda: tnn.Linear(5, 3, bias=False), (5,)),
    "relu": (nn.ReLU, tnn.ReLU, (3, 4)),
    "leaky_relu": (lambda: nn.LeakyReLU(0.2), lambda: tnn.LeakyReLU(0.2), (3, 4)),
    "sigmoid": (nn.Sigmoid, tnn.Sigmoid, (3, 4)),
    "tanh": (nn.Tanh, tnn.Tanh, (3, 4)),
    "softmax": (lambda: nn.Softmax(1), lambda: tnn.Softmax(1), (3, 4, 2)),
    "log_softmax": (lambda: nn.LogSoftmax(0), lambda: tnn.LogSoftmax(0), (3, 4)),
    "flatten": (lambda: nn.Flatten(1, 2), lambda: tnn.Flatten(1, 2), (2, 3, 4, 5)),
    "dropout": (lambda: nn.Dropout(0.0), lambda: tnn.Dropout(0.0), (3, 4)),
    "identity": (nn.Identity, tnn.Identity, (3, 4)),
}


def close(ours, theirs, what):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape}, PyTorch {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12 * (1 + np.abs(theirs).max(initial=0)),
                               err_msg=what)


def run_both(ours, theirs, x_data, what):
    x, tx = Tensor(x_data, requires_grad=True), torch.tensor(x_data, requires_grad=True)
    out, tout = ours(x), theirs(tx)
    close(out.numpy(), tout.detach().numpy(), f"{what}: output")
    g = np.random.default_rng(1).standard_normal(out.shape)
    (out * Tensor(g)).sum().backward()
    (tout * torch.from_numpy(g)).sum().backward()
    close(x.grad.numpy(), tx.grad.numpy(), f"{what}: gradient of the input")
    torch_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        close(p.grad.numpy(), torch_params[name].grad.numpy(), f"{what}: gradient of {name}")
        p.grad, torch_params[name].grad = None, None


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_matches_pytorch(name):
    build, build_torch, shape = LAYERS[name]
    ours, theirs = build().double(), build_torch().double()
    rng = np.random.default_rng(0)
    for _, p in ours.named_parameters():  # off the initial zeros and ones
        p.data = rng.standard_normal(p.shape) * 0.5
    theirs.load_state_dict({k: torch.from_numpy(np.array(v.numpy())) for k, v in ours.state_dict().items()},
                           strict=True)
    x = rng.standard_normal(shape)
    if "lp_pool" in name:
        x = np.abs(x) + 0.1  # p-norms of positive windows (PyTorch's sign convention differs below 0)
    for training in (True, False, True):  # train, eval with the updated statistics, train again
        ours.train(training)
        theirs.train(training)
        run_both(ours, theirs, x, f"{name} ({'train' if training else 'eval'})")
        torch_buffers = dict(theirs.named_buffers())
        for buffer_name, b in ours.named_buffers():
            close(b.numpy(), torch_buffers[buffer_name].numpy(), f"{name}: {buffer_name}")


# --------------------------------------------------------------------------- functional ops
@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_matches_pytorch(mode):
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 5))
    widths = (2, 1, 0, 3)
    ours = Tensor(x, requires_grad=True)
    theirs = torch.tensor(x, requires_grad=True)
    out = F.pad(ours, widths, mode, 0.5) if mode == "constant" else F.pad(ours, widths, mode)
    tout = TF.pad(theirs, widths, mode, 0.5) if mode == "constant" else TF.pad(theirs, widths, mode)
    close(out.numpy(), tout.detach().numpy(), f"pad {mode}")
    g = np.random.default_rng(3).standard_normal(out.shape)
    (out * Tensor(g)).sum().backward()
    (tout * torch.from_numpy(g)).sum().backward()
    close(ours.grad.numpy(), theirs.grad.numpy(), f"pad {mode}: gradient")


def test_unfold_and_fold_match_pytorch():
    x = np.random.default_rng(4).standard_normal((2, 3, 6, 5))
    ours, theirs = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    args = dict(kernel_size=(3, 2), dilation=(1, 2), padding=1, stride=(2, 1))
    cols, tcols = F.unfold(ours, **args), TF.unfold(theirs, **args)
    close(cols.numpy(), tcols.detach().numpy(), "unfold")
    back, tback = F.fold(cols, (6, 5), **args), TF.fold(tcols, (6, 5), **args)
    close(back.numpy(), tback.detach().numpy(), "fold")
    g = np.random.default_rng(5).standard_normal(back.shape)
    (back * Tensor(g)).sum().backward()
    (tback * torch.from_numpy(g)).sum().backward()
    close(ours.grad.numpy(), theirs.grad.numpy(), "fold(unfold(x)): gradient")


@pytest.mark.parametrize("mode", ["full", "valid"])
def test_true_convolution_and_correlation_match_pytorch(mode):
    rng = np.random.default_rng(6)
    x, k = rng.standard_normal((7, 6)), rng.standard_normal((3, 2))
    pad = (k.shape[0] - 1, k.shape[1] - 1) if mode == "full" else (0, 0)
    tx = torch.tensor(x)[None, None]
    correlation = TF.conv2d(tx, torch.tensor(k)[None, None], padding=pad)[0, 0]
    convolution = TF.conv2d(tx, torch.tensor(k[::-1, ::-1].copy())[None, None], padding=pad)[0, 0]
    close(F.correlate2d(Tensor(x), Tensor(k), mode).numpy(), correlation.numpy(), "correlate2d")
    close(F.convolve2d(Tensor(x), Tensor(k), mode).numpy(), convolution.numpy(), "convolve2d: flipped kernel")


def test_locally_connected_matches_an_unfold_in_pytorch():
    rng = np.random.default_rng(7)
    layer = nn.LocallyConnected2d(2, 3, (5, 6), (3, 2), stride=(1, 2), dtype="float64")
    x = rng.standard_normal((2, 2, 5, 6))
    oh, ow = layer.output_size
    # (N, C, kh, kw, OH, OW) patches, one kernel (OH, OW, K, C, kh, kw) per output position
    cols = TF.unfold(torch.tensor(x), (3, 2), stride=(1, 2)).reshape(2, 2, 3, 2, oh, ow)
    weight = torch.tensor(layer.weight.numpy())
    expected = torch.einsum("bcmnij,ijkcmn->bkij", cols, weight) + torch.tensor(layer.bias.numpy())
    close(layer(Tensor(x)).numpy(), expected.numpy(), "locally_connected2d")


LOSSES = {
    "cross_entropy_weight_ignore_smoothing": (
        lambda a, t, w: F.cross_entropy(a, t, w, ignore_index=255, label_smoothing=0.2),
        lambda a, t, w: TF.cross_entropy(a, t, w, ignore_index=255, label_smoothing=0.2)),
    "cross_entropy_sum": (lambda a, t, w: F.cross_entropy(a, t, reduction="sum", ignore_index=255),
                          lambda a, t, w: TF.cross_entropy(a, t, reduction="sum", ignore_index=255)),
    "nll_loss_weight_none": (
        lambda a, t, w: F.nll_loss(a.log_softmax(1), t, w, ignore_index=255, reduction="none"),
        lambda a, t, w: TF.nll_loss(a.log_softmax(1), t, w, ignore_index=255, reduction="none")),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_class_index_losses_match_pytorch(name):
    ours_fn, torch_fn = LOSSES[name]
    rng = np.random.default_rng(8)
    logits, target = rng.standard_normal((4, 3, 2, 2)), rng.integers(0, 3, (4, 2, 2))
    weight = rng.uniform(0.5, 2, 3)
    target[0, 0, 1] = target[3, 1, 0] = 255
    ours = Tensor(logits, requires_grad=True)
    theirs = torch.tensor(logits, requires_grad=True)
    out = ours_fn(ours, target, Tensor(weight))
    tout = torch_fn(theirs, torch.tensor(target), torch.tensor(weight))
    close(out.numpy(), tout.detach().numpy(), name)
    g = np.random.default_rng(9).standard_normal(out.shape)
    (out * Tensor(g)).sum().backward()
    (tout * torch.from_numpy(g)).sum().backward()
    close(ours.grad.numpy(), theirs.grad.numpy(), f"{name}: gradient")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_probability_losses_match_pytorch(reduction):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((4, 3, 2)) * 4
    probs = rng.uniform(0, 1, (4, 3, 2))
    probs /= probs.sum(1, keepdims=True)
    y = rng.uniform(0, 1, (4, 3, 2))
    p = 1 / (1 + np.exp(-x))
    p[0, 0, 0], y[0, 0, 0] = 0.0, 0.0   # saturated, right: gradient 0
    p[0, 1, 0], y[0, 1, 0] = 1.0, 1.0
    p[1, 0, 1], y[1, 0, 1] = 0.0, 1.0   # saturated, wrong: the 1e-12 clamp
    weight, pos_weight = rng.uniform(0.5, 2, (3, 1)), rng.uniform(0.5, 3, (2,))
    class_weight = rng.uniform(0.5, 2, 3)
    cases = [
        (lambda a, b: F.cross_entropy(a, b, Tensor(class_weight), reduction=reduction, label_smoothing=0.1),
         lambda a, b: TF.cross_entropy(a, b, torch.tensor(class_weight), reduction=reduction,
                                       label_smoothing=0.1), x, probs),
        (lambda a, b: F.binary_cross_entropy(a, b, Tensor(weight), reduction=reduction),
         lambda a, b: TF.binary_cross_entropy(a, b, torch.tensor(weight), reduction=reduction), p, y),
        (lambda a, b: F.binary_cross_entropy_with_logits(a, b, Tensor(weight), reduction=reduction,
                                                         pos_weight=Tensor(pos_weight)),
         lambda a, b: TF.binary_cross_entropy_with_logits(a, b, torch.tensor(weight), reduction=reduction,
                                                          pos_weight=torch.tensor(pos_weight)), x, y),
        (lambda a, b: F.mse_loss(a, b, reduction=reduction),
         lambda a, b: TF.mse_loss(a, b, reduction=reduction), x, y),
    ]
    for ours_fn, torch_fn, first, second in cases:
        a, b = Tensor(first, requires_grad=True), Tensor(second, requires_grad=True)
        ta, tb = torch.tensor(first, requires_grad=True), torch.tensor(second, requires_grad=True)
        out, tout = ours_fn(a, b), torch_fn(ta, tb)
        close(out.numpy(), tout.detach().numpy(), "loss")
        (out * 1.0).sum().backward()
        tout.sum().backward()
        for ours_t, torch_t, what in ((a, ta, "input"), (b, tb, "target")):
            np.testing.assert_allclose(ours_t.grad.numpy(), torch_t.grad.numpy(), rtol=1e-10, atol=0,
                                       err_msg=f"gradient of the {what}")
