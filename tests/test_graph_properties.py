"""Autograd on random computation graphs, against an oracle that shares no code with it.

Hypothesis draws the structure of the graph (tests/graphs.py: 2-4 leaves, 5-20 ops of the
whole differentiable op set, each reading the newest node and an older one in either order,
or the same node twice), not only its sizes. For every leaf the gradient that
``backward()`` leaves in ``.grad`` is compared with central finite differences in float64,
written out here: the directional derivative along a random direction u is
(L(x + h u) - L(x - h u)) / 2h, two forward passes, no autograd involved. L sums
<node, random cotangent> over the graph's sinks (the nodes nothing reads), so every op
counts. The same graph in float32 must give float32 nodes close to the float64 ones.

A function with kinks (relu, abs, max, pooling, clamp) is not differentiable everywhere:
when the analytic and numeric values disagree, the difference quotient is taken at two
larger steps and one-sided; if these disagree among themselves the graph sits on a kink and
the example is rejected, otherwise the mismatch is a real gradient error and the test fails.
"""

import gc

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinygrad_cnn as tc
from tests.graphs import evaluate, graphs
from tinygrad_cnn import Tensor

# 200 graphs under the ci profile (40 examples), 75 under dev, 2000 under thorough
GRAPHS = settings(max_examples=5 * settings.default.max_examples)
STEP = 1e-6
DIRECTIONS = 2  # random directions per leaf


def objective(graph, values, scales, cotangents) -> float:
    """L(leaf values) = sum over sinks of <node, cotangent>, without autograd, in float64."""
    with tc.no_grad():
        nodes = evaluate(graph, [Tensor(v) for v in values], scales)
    return float(sum((nodes[i].numpy() * c).sum() for i, c in zip(graph.sinks, cotangents)))


def central_difference(graph, values, scales, cotangents, leaf, direction, step) -> float:
    def at(t):
        shifted = list(values)
        shifted[leaf] = values[leaf] + t * direction
        return objective(graph, shifted, scales, cotangents)
    return (at(step) - at(-step)) / (2 * step)


def one_sided_differences(graph, values, scales, cotangents, leaf, direction, at_x) -> list[float]:
    """(L(x + h u) - L(x)) / h and (L(x) - L(x - h u)) / h: they differ on a kink, even one
    exactly at x, where central differences at every step give the mean of the two slopes."""
    h = 1e-7
    shifted = [list(values), list(values)]
    shifted[0][leaf] = values[leaf] + h * direction
    shifted[1][leaf] = values[leaf] - h * direction
    after, before = (objective(graph, v, scales, cotangents) for v in shifted)
    return [(after - at_x) / h, (at_x - before) / h]


def close(a: float, b: float, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    return abs(a - b) <= atol + rtol * max(abs(a), abs(b))


@GRAPHS
@given(graph=graphs(), keep_nodes=st.booleans())
def test_random_graph_gradients_match_finite_differences(graph, keep_nodes):
    """``keep_nodes=False``: only the loss is held when backward runs, as in a training loop,
    so the graph reaches every intermediate result through its creator's stand-in."""
    values = graph.leaf_values()
    leaves = [Tensor(v, requires_grad=True) for v in values]
    scales: list[float] = []
    nodes = evaluate(graph, leaves, scales)
    cotangents = graph.cotangents([nodes[i].shape for i in graph.sinks])
    loss = sum((nodes[i] * Tensor(c)).sum() for i, c in zip(graph.sinks, cotangents))
    forward64 = [n.numpy() for n in nodes]
    if not keep_nodes:
        del nodes
        gc.collect()
    loss.backward()
    assert np.isfinite(loss.item())

    rng = np.random.default_rng(graph.seed + 2)
    for k, leaf in enumerate(leaves):
        grad = np.zeros(leaf.shape) if leaf.grad is None else leaf.grad.numpy()
        assert grad.shape == leaf.shape and grad.dtype == np.float64
        for _ in range(DIRECTIONS):
            u = rng.standard_normal(leaf.shape)
            analytic = float((grad * u).sum())
            numeric = central_difference(graph, values, scales, cotangents, k, u, STEP)
            if close(analytic, numeric):
                continue
            wider = [central_difference(graph, values, scales, cotangents, k, u, h) for h in (1e-5, 1e-4)]
            one_sided = one_sided_differences(graph, values, scales, cotangents, k, u, loss.item())
            assume(all(close(numeric, w, rtol=1e-4, atol=1e-5) for w in wider + one_sided))  # else: a kink
            raise AssertionError(f"leaf n{k} {leaf.shape}: autograd's directional derivative {analytic:.10g}"
                                 f", finite differences {numeric:.10g} (steps 1e-5, 1e-4: {wider})")

    # the forward pass in float32: every node float32 and close to the float64 value
    with tc.no_grad():
        nodes32 = evaluate(graph, [Tensor(v.astype(np.float32)) for v in values], scales)
    for i, (n32, n64) in enumerate(zip(nodes32, forward64)):
        assert n32.dtype == np.float32, f"node n{i} is {n32.dtype} in the float32 graph"
        assert n32.shape == n64.shape
        scale = 1.0 + float(np.abs(n64).max(initial=0.0))
        np.testing.assert_allclose(n32.numpy(), n64, rtol=1e-3, atol=1e-3 * scale,
                                   err_msg=f"node n{i} in float32")
