"""Random computation graphs for the autograd oracles: a Hypothesis strategy and an evaluator.

A drawn :class:`Graph` is a small program: 2-4 leaves, then 5-20 steps, each step one op of
the library's differentiable op set (arithmetic with broadcasting, unary maths, reductions
with and without keepdim, matmul and linear, reshape/transpose/permute/getitem/expand/
gather/cat/stack/where/pad, softmax, conv2d and its variants, pooling, batch norm, add_relu,
the losses) applied to earlier nodes. A binary step reads the newest node and one chosen at
random (an older one, or the newest again: the same node twice), in either argument order;
a unary step mostly reads the newest node and sometimes an older one, so graphs branch and
join again (diamonds, skip connections, DenseNet-style concatenations of old and new maps).

Every node's shape broadcasts to one base shape B = (N, C, S, S) (S = 3, C <= N), so any
two nodes can meet in a binary op, the newest node expanded to B serves as a conv2d weight
(C, C, 3, 3), and pooling keeps (or, padded, restores) the S x S maps. The values come from
a seed; constants (masks, targets, running statistics) too. To keep values O(1) through 20
ops, a step whose output exceeds ``LIMIT`` is scaled down by a constant factor recorded on
the first evaluation and reused by every later one (a constant, so the function stays
smooth). Used by tests/test_graph_properties.py (finite differences) and
tests/parity/test_parity_graphs.py (PyTorch), which evaluate the same program.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

import tinygrad_cnn as tc
import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor

SIZE = 3          # S: the spatial size of every map (a 3x3 kernel with padding 1 keeps it)
LIMIT = 4.0       # outputs larger than this are scaled down (by a recorded constant)


@dataclass(frozen=True)
class Step:
    op: str
    reads: tuple[int, ...]
    params: tuple = ()  # (name, value) pairs: hashable and printed in order

    def __repr__(self) -> str:
        args = ", ".join(f"n{i}" for i in self.reads)
        extra = "".join(f", {k}={v!r}" for k, v in self.params)
        return f"{self.op}({args}{extra})"


@dataclass(frozen=True)
class Graph:
    shape: tuple[int, int, int, int]           # B = (N, C, S, S)
    leaf_shapes: tuple[tuple[int, ...], ...]
    steps: tuple[Step, ...]
    seed: int

    def __repr__(self) -> str:
        lines = [f"Graph(B={self.shape}, seed={self.seed})"]
        lines += [f"  n{i} = leaf{shape}" for i, shape in enumerate(self.leaf_shapes)]
        first = len(self.leaf_shapes)
        lines += [f"  n{first + i} = {step!r}" for i, step in enumerate(self.steps)]
        return "\n".join(lines)

    @property
    def sinks(self) -> list[int]:
        """Nodes no step reads: the loss sums <node, cotangent> over them."""
        read = {i for step in self.steps for i in step.reads}
        return [i for i in range(len(self.leaf_shapes) + len(self.steps)) if i not in read]

    def leaf_values(self) -> list[np.ndarray]:
        rng = np.random.default_rng(self.seed)
        return [np.asarray(rng.uniform(-2.0, 2.0, shape)) for shape in self.leaf_shapes]

    def cotangents(self, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
        rng = np.random.default_rng(self.seed + 1)
        return [np.asarray(rng.standard_normal(shape)) for shape in shapes]


class Context:
    """What an op needs besides its inputs: the base shape, the dtype of the run, and the
    library: this one's functional ops (``F``), joins, indexing and constants. The parity
    tests subclass it to run the same program on PyTorch."""

    F = F

    def __init__(self, shape: tuple[int, int, int, int], dtype) -> None:
        self.shape, self.dtype = shape, np.dtype(dtype)

    def full(self, a):
        return a if tuple(a.shape) == self.shape else a.expand(self.shape)

    def constant(self, seed: int, shape, kind: str = "normal") -> np.ndarray:
        rng = np.random.default_rng(seed)
        if kind == "mask":
            return rng.random(shape) < 0.5
        if kind == "positive":
            return rng.uniform(0.5, 1.5, shape).astype(self.dtype)
        return rng.standard_normal(shape).astype(self.dtype)

    # what differs between libraries
    def tensor(self, seed: int, shape, kind: str = "normal"):
        return Tensor(self.constant(seed, shape, kind))

    def labels(self, array: np.ndarray):
        return array

    def numpy(self, t) -> np.ndarray:
        return t.numpy()

    def index(self, x, dim: int, item):
        """x[..., item, ...] with ``item`` (a slice, an int or an int array) at ``dim``."""
        return x[(slice(None),) * dim + (item,)]

    def flip(self, x, dim: int):
        return self.index(x, dim, slice(None, None, -1))

    def cat(self, tensors, dim: int):
        return tc.cat(tensors, dim)

    def stack(self, tensors, dim: int):
        return tc.stack(tensors, dim)

    def where(self, mask: np.ndarray, a, b):
        return tc.where(mask, a, b)

    def reduce(self, a, method: str, dims, keepdim: bool):
        return getattr(a, method)(dims, keepdim=keepdim)


def _dims(a: Tensor, dims: tuple[int, ...]):
    """The drawn (negative) dims that ``a`` has; None (every dim) if it has none of them."""
    kept = tuple(d for d in dims if -a.ndim <= d)
    return kept or None


def _keep_shape(a: Tensor, dims) -> tuple[int, ...]:
    axes = range(a.ndim) if dims is None else [d % a.ndim for d in dims]
    return tuple(1 if i in axes else n for i, n in enumerate(a.shape))


def _reduce(method: str):
    def apply(ctx, xs, p):
        (a,) = xs
        dims = _dims(a, p["dims"])
        if method == "var":  # n - correction must stay positive
            count = int(np.prod([a.shape[d] for d in (range(a.ndim) if dims is None else dims)]))
            out = a.var(dims, correction=p["correction"] if count > 1 else 0, keepdim=p["keepdim"])
        else:
            out = ctx.reduce(a, method, dims, p["keepdim"])
        return out if p["keepdim"] else out.reshape(_keep_shape(a, dims))
    return apply


def _extreme_along(method: str):
    def apply(ctx, xs, p):
        (a,) = xs
        if a.ndim == 0:
            a = ctx.full(a)
        dim = max(p["dim"], -a.ndim)
        values = getattr(a, method)(dim, keepdim=p["keepdim"]).values
        return values if p["keepdim"] else values.unsqueeze(dim % a.ndim)
    return apply


def _conv(ctx, xs, p):
    x, w = ctx.full(xs[0]), ctx.full(xs[1])
    c = ctx.shape[1]
    kernel = w[:c]  # (C, C, 3, 3): the node itself is the kernel
    variant = p["variant"]
    bias = w[:c, 0, 0, 0] if p["bias"] else None
    if variant == "same":
        return ctx.F.conv2d(x, kernel, bias, padding=1)
    if variant == "pointwise":
        return ctx.F.conv2d(x, kernel[:, :, 1:2, 1:2], bias)
    if variant == "dilated":
        return ctx.F.conv2d(x, kernel, bias, padding=2, dilation=2)
    if variant == "strided":  # 3x3 -> 2x2 -> padded back to 3x3
        return ctx.F.pad(ctx.F.conv2d(x, kernel, bias, stride=2, padding=1), (0, 1, 1, 0))
    if variant == "depthwise":
        return ctx.F.conv2d(x, kernel[:, :1], bias, padding=1, groups=c)
    if variant == "asymmetric":
        return ctx.F.conv2d(x, kernel[:, :, :, :2], bias, padding=((1, 1), (0, 1)))
    if variant == "transposed":
        return ctx.F.conv_transpose2d(x, kernel, bias, padding=1)
    raise AssertionError(variant)


def _pool(ctx, xs, p):
    x = ctx.full(xs[0])
    variant = p["variant"]
    if variant == "max3":
        return ctx.F.max_pool2d(x, 3, 1, 1)
    if variant == "max2_dilated":
        return ctx.F.max_pool2d(x, 2, 1, 1, dilation=2)
    if variant == "max2_padded":
        return ctx.F.pad(ctx.F.max_pool2d(x, 2, 1), (1, 0, 0, 1))
    if variant == "max_unbatched":
        return ctx.F.max_pool2d(x[0], 3, 1, 1)
    if variant == "avg3":
        return ctx.F.avg_pool2d(x, 3, 1, 1, count_include_pad=p["count_include_pad"])
    if variant == "avg2_ceil":
        return ctx.F.pad(ctx.F.avg_pool2d(x, 2, 2, ceil_mode=True), (0, 1, 0, 1), mode="replicate")
    if variant == "adaptive":
        return ctx.F.adaptive_avg_pool2d(ctx.F.pad(x, (1, 1, 1, 1), mode="reflect"), SIZE)
    if variant == "adaptive2":
        return ctx.F.pad(ctx.F.adaptive_avg_pool2d(x, 2), (0, 1, 1, 0), mode="circular")
    if variant == "lp":
        return ctx.F.pad(ctx.F.lp_pool2d(x * x + 0.25, 2, 2, stride=1), (0, 1, 0, 1))
    raise AssertionError(variant)


def _batch_norm(ctx, xs, p):
    x, other = ctx.full(xs[0]), ctx.full(xs[1])
    weight = other.mean((0, 2, 3)) + 1.0
    bias = other.amax((0, 2, 3)) if p["bias"] else None
    c = ctx.shape[1]
    norm = ctx.F.batch_norm_relu if p.get("relu") else ctx.F.batch_norm
    if p["training"]:
        running = (ctx.tensor(p["seed"], (c,)), ctx.tensor(p["seed"] + 1, (c,), "positive")) \
            if p["running"] else (None, None)
        return norm(x, *running, weight, bias, training=True)
    mean, var = ctx.tensor(p["seed"], (c,)), ctx.tensor(p["seed"] + 1, (c,), "positive")
    return norm(x, mean, var, weight, bias, training=False)


def _cat_pick(ctx, xs, p):
    a, b = ctx.full(xs[0]), ctx.full(xs[1])
    dim = p["dim"]
    joined = ctx.cat([a, b], dim)
    return ctx.index(joined, dim, np.asarray(p["pick"]))


def _stack_reduce(ctx, xs, p):
    stacked = ctx.stack([ctx.full(x) for x in xs], p["dim"])
    if p["reduce"] == "sum":
        return stacked.sum(p["dim"])
    if p["reduce"] == "amax":
        return stacked.amax(p["dim"])
    return ctx.index(stacked, p["dim"], 1)


def _losses(ctx, xs, p):
    a, b = ctx.full(xs[0]), ctx.full(xs[-1])
    n, c = ctx.shape[:2]
    kind, reduction = p["kind"], p["reduction"]
    # PyTorch's options: class weights, an ignored class, element weights, positive weights
    def weights(seed, shape):
        return ctx.tensor(seed, shape, "positive") if p["options"] else None

    weight = weights(p["seed"], (c,))
    if kind == "mse":
        out = ctx.F.mse_loss(a, b, reduction=reduction)
    elif kind == "bce_logits":
        positive = weights(p["seed"] + 1, (SIZE,))
        out = ctx.F.binary_cross_entropy_with_logits(a, b.sigmoid(), weights(p["seed"], (SIZE,)),
                                                 reduction=reduction, pos_weight=positive)
    elif kind == "bce":
        out = ctx.F.binary_cross_entropy(a.sigmoid(), b.sigmoid(), weights(p["seed"], (c, 1, 1)),
                                     reduction=reduction)
    elif kind == "soft_cross_entropy":  # class probabilities: a softmax of the other node
        out = ctx.F.cross_entropy(a, b.softmax(1), weight, reduction=reduction,
                                  label_smoothing=p["smoothing"])
        if reduction == "none":
            out = out.unsqueeze(1)
    else:
        target = np.random.default_rng(p["seed"]).integers(0, c + 1, (n, SIZE, SIZE))
        target[target == c] = -100 if p["options"] else 0  # some ignored targets
        target = ctx.labels(target)
        if kind == "cross_entropy":
            out = ctx.F.cross_entropy(a, target, weight, reduction=reduction, label_smoothing=p["smoothing"])
        else:
            out = ctx.F.nll_loss(a.log_softmax(1), target, weight, reduction=reduction)
        if reduction == "none":
            out = out.unsqueeze(1)
    return out


def _scramble(ctx, xs, p):
    x = ctx.full(xs[0])
    if p["how"] == "permute":
        return x.permute(p["perm"]).reshape(ctx.shape)
    if p["how"] == "transpose2d":
        return x.reshape(-1, SIZE).T.reshape(ctx.shape)
    return x.flatten(1).reshape(ctx.shape)


# name: (arity, parameter strategy for B, apply(ctx, inputs, params))
OpSpec = tuple[int, Callable, Callable]
_none = lambda shape: st.just({})  # noqa: E731
_dims4 = st.lists(st.integers(-4, -1), min_size=1, max_size=2, unique=True).map(tuple)


def _reduce_params(shape):
    return st.fixed_dictionaries({"dims": _dims4, "keepdim": st.booleans(),
                                  "correction": st.sampled_from([0, 1])})


def _dim_params(shape):
    return st.fixed_dictionaries({"dim": st.integers(-4, -1), "keepdim": st.booleans()})


def _seed(shape):
    return st.fixed_dictionaries({"seed": st.integers(0, 2**16)})


@st.composite
def _cat_params(draw, shape):
    dim = draw(st.integers(0, 3))
    pick = draw(st.lists(st.integers(0, 2 * shape[dim] - 1), min_size=shape[dim], max_size=shape[dim]))
    return {"dim": dim, "pick": tuple(pick)}


@st.composite
def _index_params(draw, shape):
    dim = draw(st.integers(0, 3))
    how = draw(st.sampled_from(["flip", "pick", "select", "roll", "gather"]))
    pick = draw(st.lists(st.integers(0, shape[dim] - 1), min_size=shape[dim], max_size=shape[dim]))
    return {"dim": dim, "how": how, "pick": tuple(pick), "shift": draw(st.integers(1, shape[dim])),
            "seed": draw(st.integers(0, 2**16))}


def _index_op(ctx, xs, p):
    x, dim = ctx.full(xs[0]), p["dim"]
    how, n = p["how"], ctx.shape[p["dim"]]
    if how == "flip":
        return ctx.flip(x, dim)
    if how == "pick":  # an integer index with repeats: one element receives several gradients
        return ctx.index(x, dim, np.asarray(p["pick"]))
    if how == "select":
        return ctx.index(x, dim, p["pick"][0]).unsqueeze(dim)
    if how == "roll":
        k = p["shift"] % n
        if not k:
            return x
        return ctx.cat([ctx.index(x, dim, slice(k, None)), ctx.index(x, dim, slice(None, k))], dim)
    index = np.random.default_rng(p["seed"]).integers(0, n, ctx.shape)
    return x.gather(dim, ctx.labels(index))


def _expand(ctx, xs, p):
    a = xs[0]
    offset = 4 - a.ndim
    target = [(-1 if p["minus_one"] and i >= offset and a.shape[i - offset] == n else n)
              for i, n in enumerate(ctx.shape)]
    return a.expand(*target) if p["varargs"] else a.expand(tuple(target))


def _squeeze(ctx, xs, p):
    a = xs[0]
    if p["how"] == "unsqueeze":
        return a.unsqueeze(0) if a.ndim < 4 else a.unsqueeze(-1).sum(-1)
    if p["how"] == "squeeze_dims":
        return a.squeeze(tuple(range(-a.ndim, 0, 2))).reshape(a.shape)
    return a.squeeze().reshape(a.shape)


OPS: dict[str, OpSpec] = {
    # arithmetic with broadcasting (two nodes)
    "add": (2, _none, lambda c, xs, p: xs[0] + xs[1]),
    "sub": (2, _none, lambda c, xs, p: xs[0] - xs[1]),
    "mul": (2, _none, lambda c, xs, p: xs[0] * xs[1]),
    "div": (2, _none, lambda c, xs, p: xs[0] / (xs[1] * xs[1] + 0.5)),
    "pow": (2, _none, lambda c, xs, p: (xs[0] * xs[0] + 0.5) ** xs[1].tanh()),
    "maximum": (2, _none, lambda c, xs, p: xs[0].maximum(xs[1])),
    "minimum": (2, _none, lambda c, xs, p: xs[0].minimum(xs[1])),
    "where": (2, _seed, lambda c, xs, p: c.where(c.constant(p["seed"], c.shape[1:], "mask"), xs[0], xs[1])),
    "add_relu": (2, _none, lambda c, xs, p: c.F.add_relu(c.full(xs[0]), c.full(xs[1]))),
    # with constants that need no gradient
    "mul_constant": (1, _seed, lambda c, xs, p: xs[0] * c.tensor(p["seed"], c.shape[2:])),
    "rsub": (1, _none, lambda c, xs, p: 1.5 - xs[0]),
    "rdiv": (1, _none, lambda c, xs, p: 1.0 / (xs[0] * xs[0] + 1.0)),
    "where_scalar": (1, _seed, lambda c, xs, p: c.where(c.constant(p["seed"], c.shape, "mask"), xs[0], 0.5)),
    # unary maths
    "neg": (1, _none, lambda c, xs, p: -xs[0]),
    "exp": (1, _none, lambda c, xs, p: xs[0].exp()),
    "log": (1, _none, lambda c, xs, p: (xs[0] * xs[0] + 0.5).log()),
    "sqrt": (1, _none, lambda c, xs, p: (xs[0] * xs[0] + 0.25).sqrt()),
    "abs": (1, _none, lambda c, xs, p: xs[0].abs()),
    "tanh": (1, _none, lambda c, xs, p: xs[0].tanh()),
    "sigmoid": (1, _none, lambda c, xs, p: xs[0].sigmoid()),
    "relu": (1, _none, lambda c, xs, p: c.F.relu(xs[0])),
    "leaky_relu": (1, _none, lambda c, xs, p: c.F.leaky_relu(xs[0], 0.2)),
    "clamp": (1, _none, lambda c, xs, p: xs[0].clamp(-1.0, 1.5)),
    "clamp_tensor": (2, _none, lambda c, xs, p: xs[0].clamp(xs[1] - 0.5, xs[1].exp())),
    "square": (1, _none, lambda c, xs, p: xs[0] ** 2),
    "cube": (1, _none, lambda c, xs, p: xs[0] ** 3),
    # reductions (keepdim=False results are reshaped back so they still broadcast to B)
    "sum": (1, _reduce_params, _reduce("sum")),
    "mean": (1, _reduce_params, _reduce("mean")),
    "amax": (1, _reduce_params, _reduce("amax")),
    "amin": (1, _reduce_params, _reduce("amin")),
    "var": (1, _reduce_params, _reduce("var")),
    "max_dim": (1, _dim_params, _extreme_along("max")),
    "min_dim": (1, _dim_params, _extreme_along("min")),
    "softmax": (1, _dim_params, lambda c, xs, p: c.F.softmax(c.full(xs[0]), p["dim"])),
    "log_softmax": (1, _dim_params, lambda c, xs, p: c.F.log_softmax(c.full(xs[0]), p["dim"])),
    # products
    "matmul": (2, _none, lambda c, xs, p: c.full(xs[0]) @ c.full(xs[1])),
    "matmul_t": (2, _none, lambda c, xs, p: c.full(xs[0]) @ c.full(xs[1]).transpose(-1, -2)),
    "matmul_broadcast": (2, _none, lambda c, xs, p: c.full(xs[0]) @ c.full(xs[1])[0, 0]),
    "matvec": (2, _none, lambda c, xs, p: c.full(xs[0])[0, 0] @ c.full(xs[1])[-1, -1, 0]),
    "linear": (2, lambda shape: st.fixed_dictionaries({"bias": st.booleans()}),
               lambda c, xs, p: c.F.linear(c.full(xs[0]), c.full(xs[1])[0, 0],
                                         c.full(xs[1])[-1, 0, 0] if p["bias"] else None)),
    # movement: views, indexing, joining
    "transpose": (1, _none, lambda c, xs, p: (xs[0] if xs[0].ndim >= 2 else c.full(xs[0])).transpose(-1, -2)),
    "scramble": (1, lambda shape: st.fixed_dictionaries({
        "how": st.sampled_from(["permute", "transpose2d", "flatten"]),
        "perm": st.permutations(range(4)).map(tuple)}), _scramble),
    "index": (1, _index_params, _index_op),
    "expand": (1, lambda shape: st.fixed_dictionaries({"minus_one": st.booleans(), "varargs": st.booleans()}),
               _expand),
    "squeeze": (1, lambda shape: st.fixed_dictionaries({
        "how": st.sampled_from(["squeeze", "squeeze_dims", "unsqueeze"])}), _squeeze),
    "cat": (2, _cat_params, _cat_pick),
    "stack": (2, lambda shape: st.fixed_dictionaries({"dim": st.integers(0, 4),
                                                      "reduce": st.sampled_from(["sum", "amax", "select"])}),
              _stack_reduce),
    "pad": (1, lambda shape: st.fixed_dictionaries({
        "mode": st.sampled_from(["constant", "reflect", "replicate", "circular"]),
        "offset": st.tuples(st.integers(0, 2), st.integers(0, 2))}),
        lambda c, xs, p: c.F.pad(c.full(xs[0]), (1, 1, 1, 1), p["mode"], 0.5)[
            ..., p["offset"][0]:p["offset"][0] + SIZE, p["offset"][1]:p["offset"][1] + SIZE]),
    # the convolutional network's ops
    "conv2d": (2, lambda shape: st.fixed_dictionaries({
        "variant": st.sampled_from(["same", "pointwise", "dilated", "strided", "depthwise", "asymmetric",
                                    "transposed"]),
        "bias": st.booleans()}), _conv),
    "pool": (1, lambda shape: st.fixed_dictionaries({
        "variant": st.sampled_from(["max3", "max2_dilated", "max2_padded", "max_unbatched", "avg3",
                                    "avg2_ceil", "adaptive", "adaptive2", "lp"]),
        "count_include_pad": st.booleans()}), _pool),
    "batch_norm": (2, lambda shape: st.fixed_dictionaries({
        "training": st.booleans(), "running": st.booleans(), "bias": st.booleans(),
        "relu": st.booleans(), "seed": st.integers(0, 2**16)}), _batch_norm),
    "loss": (2, lambda shape: st.fixed_dictionaries({
        "kind": st.sampled_from(["mse", "bce_logits", "bce", "cross_entropy", "soft_cross_entropy", "nll"]),
        "reduction": st.sampled_from(["mean", "sum", "none"]), "options": st.booleans(),
        "smoothing": st.sampled_from([0.0, 0.2]), "seed": st.integers(0, 2**16)}), _losses),
}


@st.composite
def leaf_shapes(draw, shape):
    """A shape that broadcasts to ``shape``: a suffix of it, some entries replaced by 1."""
    ndim = draw(st.integers(0, 4))
    suffix = shape[4 - ndim:]
    return tuple(n if draw(st.booleans()) else 1 for n in suffix)


@st.composite
def graphs(draw, min_leaves=2, max_leaves=4, min_ops=5, max_ops=20, ops=None):
    """A random :class:`Graph` (see the module docstring)."""
    channels = draw(st.integers(1, 2))
    batch = draw(st.integers(channels, 3))
    shape = (batch, channels, SIZE, SIZE)
    n_leaves = draw(st.integers(min_leaves, max_leaves))
    # the first leaf is a whole batch of maps (the "input"); the others broadcast to it
    leaves = [shape] + [draw(leaf_shapes(shape)) for _ in range(n_leaves - 1)]
    names = sorted(OPS) if ops is None else list(ops)
    steps = []
    for _ in range(draw(st.integers(min_ops, max_ops))):
        newest = n_leaves + len(steps) - 1
        name = draw(st.sampled_from(names))
        arity, params, _ = OPS[name]
        if arity == 1:
            reads = (draw(st.one_of(st.just(newest), st.integers(0, newest))),)
        else:
            other = draw(st.integers(0, newest))  # an older node, or the newest again
            reads = (newest, other) if draw(st.booleans()) else (other, newest)
        steps.append(Step(name, reads, tuple(sorted(draw(params(shape)).items()))))
    return Graph(shape, tuple(leaves), tuple(steps), draw(st.integers(0, 2**31 - 1)))


def evaluate(graph: Graph, leaves: list, scales: list[float] | None = None, context=Context) -> list:
    """Every node of ``graph`` computed from ``leaves``. ``scales``: the constant factors of an
    earlier evaluation (pass the empty list to record them). ``context``: the library."""
    ctx = context(graph.shape, str(leaves[0].dtype).replace("torch.", ""))
    nodes = list(leaves)
    record = scales is not None and not scales
    jitter = np.random.default_rng(graph.seed + 3)
    for i, step in enumerate(graph.steps):
        _, _, apply = OPS[step.op]
        out = apply(ctx, [nodes[j] for j in step.reads], dict(step.params))
        if record:
            values = ctx.numpy(out)
            largest = float(np.abs(values).max()) if values.size else 0.0
            # to LIMIT times a factor of its own: two nodes scaled to exactly +-LIMIT could
            # cancel exactly (a + b = 0 on a relu's kink)
            scales.append(LIMIT * float(jitter.uniform(0.5, 1.0)) / largest if largest > LIMIT else 1.0)
        if scales is not None and scales[i] != 1.0:
            out = out * scales[i]
        nodes.append(out)
    return nodes
