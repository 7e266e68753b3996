"""Every model of the zoo against the same network written with torch.nn (tests/parity/torch_zoo.py).

The tiny configuration of each model (tests/zoo.py), its weights loaded into the PyTorch
network by their state_dict names (strict: names and shapes must match torchvision's), in
float64, in eval and in train mode: the outputs, the gradient w.r.t. the input and w.r.t.
every parameter, and (train mode) the running statistics batch norm updates must agree.
Dropout is set to p = 0 for train mode: the two libraries draw different masks. Several outputs
(GoogLeNet's auxiliary classifiers in train mode) are compared as one, concatenated. The
binarized network's gradients are the straight-through estimates, written for PyTorch with
torch.autograd.Function (torch_zoo.SignSTE), tied maxima routed as PyTorch's max pool does.
"""

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the PyTorch parity tests need torch (pip install torch==2.13.0)")

import tinygrad_cnn as tc  # noqa: E402
from tests import zoo  # noqa: E402
from tests.parity import torch_zoo  # noqa: E402
from tinygrad_cnn import Tensor, nn  # noqa: E402

THOROUGH = os.environ.get("TINYGRAD_CNN_HYPOTHESIS_PROFILE") == "thorough"


def close(ours, theirs, what, scale=0.0):
    """|ours - theirs| <= 1e-9 |theirs| + 1e-12, plus 1e-12 ``scale``: a gradient that is 0 in
    exact arithmetic (the shift of a batch norm that a train-mode batch norm follows) is rounding
    noise of the size of the model's other gradients (``scale``: the largest of their norms)."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape}, PyTorch {theirs.shape}"
    error, size = float(np.linalg.norm(ours - theirs)), float(np.linalg.norm(theirs))
    assert error <= 1e-9 * size + 1e-12 * (1.0 + scale), (
        f"{what}: |difference| {error:.3g} for |PyTorch's| {size:.3g}")


def with_sign_edge_cases(model):
    """Latent weights at the edges of the binarized layers' conventions: 0 (sign(0) = +1) and
    beyond +-1 (no straight-through gradient in eval mode; in train mode clipped to +-1 first,
    where the estimate passes, |w| <= 1)."""
    for m in model.modules():
        if isinstance(m, (nn.BinarizedConv2d, nn.BinarizedLinear)):
            m.weight.data.reshape(-1)[:3] = (0.0, 1.5, -2.0)
    return model


def joined(out, join):
    return join(list(out), 1) if isinstance(out, tuple) else out


@pytest.mark.parametrize("name", zoo.CHECKED)
def test_model_matches_pytorch(name):
    if name in zoo.FULL_SIZE_ONLY and not THOROUGH:
        pytest.skip(f"{name} at full size runs under the thorough profile only: {zoo.FULL_SIZE_ONLY[name]}")
    ours = with_sign_edge_cases(zoo.tiny_model(name))
    theirs = torch_zoo.build(name, zoo.CLASSES)
    theirs.load_state_dict({k: torch.from_numpy(np.array(v.numpy())) for k, v in ours.state_dict().items()},
                           strict=True)
    has_norm = any(isinstance(m, nn.BatchNorm2d) for m in ours.modules())
    x_data = zoo.tiny_input(name, batch=2 if has_norm else 1)
    cotangent = None
    for training in (False, True):
        if training:
            for m in ours.modules():
                if isinstance(m, nn.Dropout):
                    m.p = 0.0
            for m in theirs.modules():
                if isinstance(m, torch.nn.Dropout):
                    m.p = 0.0
        ours.train(training)
        theirs.train(training)
        mode = f"{name} ({'train' if training else 'eval'} mode)"
        x, tx = Tensor(x_data, requires_grad=True), torch.tensor(x_data, requires_grad=True)
        with tc.use_backend("reference"):
            out = joined(ours(x), tc.cat)
        tout = joined(theirs(tx), torch.cat)
        close(out.numpy(), tout.detach().numpy(), f"{mode}: output")
        cotangent = np.random.default_rng(3).standard_normal(out.shape)
        ours.zero_grad()
        with tc.use_backend("reference"):
            (out * Tensor(cotangent)).sum().backward()
        (tout * torch.from_numpy(cotangent)).sum().backward()
        close(x.grad.numpy(), tx.grad.numpy(), f"{mode}: gradient of the input")
        torch_params = dict(theirs.named_parameters())
        # no gradient (None): a head that eval mode does not run
        theirs_grads = {n: np.zeros(t.shape) if t.grad is None else t.grad.numpy()
                        for n, t in torch_params.items()}
        scale = max(float(np.linalg.norm(g)) for g in theirs_grads.values())
        for param_name, p in ours.named_parameters():
            close(np.zeros(p.shape) if p.grad is None else p.grad.numpy(), theirs_grads[param_name],
                  f"{mode}: gradient of {param_name}", scale)
            torch_params[param_name].grad = None
        if training:  # what the pass changed: the running statistics, clipped latent weights
            for param_name, p in ours.named_parameters():
                close(p.numpy(), torch_params[param_name].detach().numpy(), f"{mode}: {param_name}, after")
            torch_buffers = dict(theirs.named_buffers())
            for buffer_name, b in ours.named_buffers():
                if b.dtype.kind == "f":
                    close(b.numpy(), torch_buffers[buffer_name].numpy(), f"{mode}: {buffer_name}")
