"""The random computation graphs of tests/graphs.py, run by tinygrad_cnn and by PyTorch.

The same program (ops, operands, constants, seeds) in both libraries in float64: every node's
value and every leaf's gradient must agree. PyTorch is an oracle that shares no code with
this project; where tests/test_graph_properties.py checks the gradients against finite
differences, this checks values and gradients against an independent implementation of
every op, kinks included (relu, abs, max and clamp at ties follow PyTorch's conventions).
"""

import numpy as np
import pytest
from hypothesis import given, settings

torch = pytest.importorskip("torch", reason="the PyTorch parity tests need torch (pip install torch==2.13.0)")

from tests.graphs import evaluate, graphs  # noqa: E402
from tests.parity.torch_context import TorchContext  # noqa: E402
from tinygrad_cnn import Tensor  # noqa: E402

GRAPHS = settings(max_examples=5 * settings.default.max_examples)  # 200 under ci


def close(ours, theirs, what, scale=None):
    """rtol 1e-9, atol 1e-11 times ``scale`` (default: 1 + the largest |theirs|)."""
    scale = 1.0 + float(np.abs(theirs).max(initial=0.0)) if scale is None else scale
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-11 * scale, err_msg=what)


@GRAPHS
@given(graph=graphs())
def test_random_graphs_match_pytorch(graph):
    values = graph.leaf_values()
    scales: list[float] = []
    ours = [Tensor(v, requires_grad=True) for v in values]
    theirs = [torch.tensor(v, requires_grad=True) for v in values]
    nodes = evaluate(graph, ours, scales)
    torch_nodes = evaluate(graph, theirs, scales, TorchContext)
    for i, (a, b) in enumerate(zip(nodes, torch_nodes)):
        assert tuple(a.shape) == tuple(b.shape), f"node n{i}: shape {a.shape}, PyTorch {tuple(b.shape)}"
        close(a.numpy(), b.detach().numpy(), f"node n{i}")
    cotangents = graph.cotangents([nodes[i].shape for i in graph.sinks])
    sum((nodes[i] * Tensor(c)).sum() for i, c in zip(graph.sinks, cotangents)).backward()
    sum((torch_nodes[i] * torch.from_numpy(c)).sum() for i, c in zip(graph.sinks, cotangents)).backward()
    grads = [(np.zeros(a.shape) if a.grad is None else a.grad.numpy(),
              np.zeros(a.shape) if b.grad is None else b.grad.numpy()) for a, b in zip(ours, theirs)]
    # a gradient that cancels to 0 keeps the rounding of the terms it cancelled, which are as
    # large as the graph's other gradients (found: a batch norm's weight-like scalar, exactly
    # 0 in theory, 5e-12 here and -7e-12 in PyTorch beside gradients of 50)
    scale = 1.0 + max(float(np.abs(gb).max(initial=0.0)) for _, gb in grads)
    for k, (ga, gb) in enumerate(grads):
        close(ga, gb, f"gradient of leaf n{k}", scale)
