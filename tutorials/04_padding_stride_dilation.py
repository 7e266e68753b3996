# %% [markdown]
# # 4. Padding, stride and dilation
#
# Three knobs decide where a kernel visits the input and so how large the output is:
#
# * **padding** $P$: zeros added around the input. Three named choices:
#   *valid* (no padding: the kernel only visits positions where it fits),
#   *same* (enough padding, $F - 1$ in total, for the output to keep the input size at stride 1),
#   *full* ($F - 1$ on every side: every position where kernel and input overlap at all);
# * **stride** $S$: the step between two visits, which downsamples;
# * **dilation** $d$: gaps between the kernel taps (atrous convolution); a kernel of size $F$
#   then spans $d (F - 1) + 1$ pixels.
#
# The **output-size formula** of the course, along each spatial dimension:
#
# $$ O = \left\lfloor \frac{W - F + 2P}{S} \right\rfloor + 1 \qquad
#    \text{(with dilation: } F \to d(F - 1) + 1\text{)}. $$
#
# The last part is about **receptive fields**: the input region one output unit depends on.
# Three stacked 3x3 convolutions see 7x7 pixels, like one 7x7 convolution, with
# $3 \cdot 9 C^2 = 27 C^2$ instead of $49 C^2$ weights (C channels in and out) and two extra
# non-linearities (the VGG argument).

# %%
import argparse
import sys
from pathlib import Path

import numpy as np

import tinygrad_cnn
import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor, nn, theory

parser = argparse.ArgumentParser(description="Tutorial 4: padding, stride and dilation")
parser.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
parser.add_argument("--out", default=None, help="folder for the pictures (default: tutorials/out)")
# As a script an unknown flag (a typo such as --output for --out) is an error; in a notebook
# the Jupyter kernel's own flags (-f kernel-<id>.json) are in sys.argv: parse_known_args skips them.
args = parser.parse_known_args()[0] if "ipykernel" in sys.modules else parser.parse_args()
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(args.out) if args.out else HERE / "out"
OUT.mkdir(parents=True, exist_ok=True)
tinygrad_cnn.manual_seed(0)
rng = np.random.default_rng(0)

# %% [markdown]
# ## Valid, same and full
#
# Correlating an image of ones with a kernel of ones counts, at every output position, how
# many kernel taps land on real pixels (not on padding). Valid: always 9. Same and full: fewer
# towards the border, where part of the kernel hangs over the zero padding.

# %%
ones_image = Tensor.ones(1, 1, 7, 7)
ones_kernel = Tensor.ones(1, 1, 3, 3)
overlap = {}
for padding in ("valid", "same", "full"):
    out = F.conv2d(ones_image, ones_kernel, padding=padding).numpy()[0, 0]
    overlap[padding] = out
    print(
        f"padding={padding!r:8s}: 7x7 input, 3x3 kernel -> {out.shape[0]}x{out.shape[1]} output, "
        f"corner value {out[0, 0]:.0f}"
    )
assert overlap["valid"].shape == (5, 5) and np.all(overlap["valid"] == 9), "valid: 7 - 3 + 1 = 5, all inside"
assert overlap["same"].shape == (7, 7) and overlap["same"][0, 0] == 4, "same keeps 7x7; a corner sees 2x2"
assert overlap["full"].shape == (9, 9) and overlap["full"][0, 0] == 1, "full: 7 + 3 - 1 = 9; corner sees 1"

# %% [markdown]
# ## The output-size formula
#
# `theory.conv_output_size(W, F, S, P, d)` is the formula; each row below also runs the
# convolution and checks the shape it really produces. The examples are the classics:
# a 32x32 CIFAR image with a 5x5 kernel and padding 2 keeps its size; a 7x7 input with a 3x3
# kernel and stride 2 gives 3x3; AlexNet's first layer turns 227x227 into 55x55 with 11x11
# kernels at stride 4; and a padding that does not fit the stride, (10 - 3 + 0)/2 + 1 = 4.5,
# is floored (the last column is never visited).

# %%
examples = [  # (W, F, S, P, d, expected O)
    (32, 5, 1, 2, 1, 32),
    (32, 5, 1, 0, 1, 28),
    (7, 3, 2, 0, 1, 3),
    (7, 3, 2, 1, 1, 4),
    (227, 11, 4, 0, 1, 55),
    (10, 3, 2, 0, 1, 4),
    (9, 3, 1, 0, 2, 5),
    (9, 3, 1, 2, 2, 9),
]
print(" W  F  S  P  d |  (W - d(F-1) - 1 + 2P)/S + 1 | O (theory) | O (conv2d)")
for W, F_, S, P, d, expected in examples:
    predicted = theory.conv_output_size(W, F_, stride=S, padding=P, dilation=d)
    measured = F.conv2d(
        Tensor.zeros(1, 1, W, W), Tensor.zeros(1, 1, F_, F_), stride=S, padding=P, dilation=d
    ).shape[-1]
    exact = (W - d * (F_ - 1) - 1 + 2 * P) / S + 1
    print(f"{W:3d} {F_:2d} {S:2d} {P:2d} {d:2d} | {exact:28.2f} | {predicted:10d} | {measured:10d}")
    assert predicted == measured == expected, f"output size of W={W} F={F_} S={S} P={P} d={d}"

# %% [markdown]
# ## Stride is subsampling
#
# A stride-2 convolution computes exactly every other output of the stride-1 convolution:
# it is the same computation followed by throwing three quarters of the positions away
# (cheaper, because they are never computed).

# %%
image = Tensor(rng.standard_normal((1, 1, 12, 12)).astype(np.float32))
kernel = Tensor(rng.standard_normal((1, 1, 3, 3)).astype(np.float32))
dense_out = F.conv2d(image, kernel, padding=1).numpy()
strided_out = F.conv2d(image, kernel, padding=1, stride=2).numpy()
print(f"stride 1: {dense_out.shape[-2:]}, stride 2: {strided_out.shape[-2:]}")
np.testing.assert_allclose(
    strided_out, dense_out[..., ::2, ::2], atol=1e-5, err_msg="stride 2 = stride 1 subsampled"
)

# %% [markdown]
# ## Dilation spreads the taps
#
# A 3x3 kernel with dilation 2 is a 5x5 kernel with zeros between the taps: same 9 weights,
# a receptive field of $2 (3 - 1) + 1 = 5$.

# %%
holes = np.zeros((1, 1, 5, 5), dtype=np.float32)
holes[..., ::2, ::2] = kernel.numpy()
dilated = F.conv2d(image, kernel, dilation=2).numpy()
np.testing.assert_allclose(
    dilated,
    F.conv2d(image, Tensor(holes)).numpy(),
    atol=1e-5,
    err_msg="dilation 2 == a 5x5 kernel with zeros between the taps",
)
print(f"3x3 kernel, dilation 2: output {dilated.shape[-2:]} (as a 5x5 kernel: 12 - 5 + 1 = 8)")

# %% [markdown]
# ## Receptive fields: three 3x3 versus one 7x7
#
# With $r$ the receptive field and $j$ the *jump* (product of the strides so far), a layer
# with (dilated) kernel $k$ and stride $s$ gives $r \leftarrow r + (k - 1) j$, $j \leftarrow j s$.
# `theory.receptive_field` applies this to a stack. We also **measure** it: the gradient of
# the centre output with respect to the input is non-zero exactly on the receptive field
# (all-ones kernels, so that no contributions cancel).

# %%
stacks = {
    "one 3x3": [(3, 1, 1, 1)],
    "two 3x3": [(3, 1, 1, 1)] * 2,
    "three 3x3": [(3, 1, 1, 1)] * 3,
    "one 7x7": [(7, 1, 3, 1)],
    "3x3, dilations 1, 2, 4": [(3, 1, 1, 1), (3, 1, 2, 2), (3, 1, 4, 4)],
    "3x3 stride 2, three times": [(3, 2, 1, 1)] * 3,
}
size = 31
measured_fields = {}
for name, layers in stacks.items():
    predicted = theory.receptive_field(layers)[-1].size
    x = Tensor.zeros(1, 1, size, size, requires_grad=True)
    y = x
    for k, s, p, d in layers:
        y = F.conv2d(y, Tensor.ones(1, 1, k, k), stride=s, padding=p, dilation=d)
    centre = y.shape[-1] // 2
    y[0, 0, centre, centre].backward()
    grad = x.grad.numpy()[0, 0]
    rows = np.nonzero(grad.any(axis=1))[0]
    measured = rows.max() - rows.min() + 1
    measured_fields[name] = grad
    print(f"{name:26s}: receptive field {predicted:2d} (theory) {measured:2d} (measured by autograd)")
    assert predicted == measured, f"receptive field of {name}"
assert (
    theory.receptive_field(stacks["three 3x3"])[-1].size
    == theory.receptive_field(stacks["one 7x7"])[-1].size
    == 7
)

C = 64
three_small = nn.Sequential(*[nn.Conv2d(C, C, 3, padding=1, bias=False) for _ in range(3)])
one_large = nn.Conv2d(C, C, 7, padding=3, bias=False)
n_small, n_large = theory.count_parameters(three_small), theory.count_parameters(one_large)
print(
    f"C = {C}: three 3x3 layers {n_small:,} weights = 27 C^2 = {27 * C * C:,}; "
    f"one 7x7 layer {n_large:,} = 49 C^2 = {49 * C * C:,} ({n_small / n_large:.0%})"
)
assert n_small == 27 * C * C and n_large == 49 * C * C
assert 3 * theory.conv_parameters(C, C, 3, bias=False) == 27 * C * C
x = Tensor(rng.standard_normal((1, C, 16, 16)).astype(np.float32))
assert three_small(x).shape == one_large(x).shape == (1, C, 16, 16), "both keep the size with 'same' padding"

# %% [markdown]
# The measured gradient also shows that the receptive field is not uniform: the centre pixels
# reach the output through many more paths than the border pixels (for three 3x3 layers of
# ones the weights are a product of binomials, peaking at 19 in the centre versus 1 at a
# corner). The *effective* receptive field is smaller than the theoretical one.

# %%
grad = measured_fields["three 3x3"]
print(f"three 3x3: gradient at the centre {grad.max():.0f}, at a corner of the 7x7 field {grad[12, 12]:.0f}")
np.testing.assert_array_equal(grad[15, 12:19], 7 * np.array([1, 3, 6, 7, 6, 3, 1]))
assert grad.max() == 49 and grad[12, 12] == 1, "49 paths from the centre, 1 from a corner"

# %% [markdown]
# ## Pictures
#
# `04_padding.png`: how many kernel taps see real pixels for each padding mode.
# `04_receptive_fields.png`: |d centre output / d input| for each stack.

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
for ax, (name, values) in zip(axes, overlap.items()):
    ax.imshow(values, cmap="Blues", vmin=0, vmax=9)
    for (r, c), v in np.ndenumerate(values):
        ax.text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=9, color="white" if v > 5 else "black")
    ax.set_title(f"padding='{name}': 7x7 -> {values.shape[0]}x{values.shape[1]}")
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("3x3 kernel of ones on a 7x7 image of ones: taps that land on real pixels")
fig.tight_layout()
fig.savefig(OUT / "04_padding.png", dpi=90)
plt.close(fig)

fig, axes = plt.subplots(2, 3, figsize=(12, 8.6), layout="constrained")
for ax, (name, grad) in zip(axes.ravel(), measured_fields.items()):
    crop = grad[5:26, 5:26]  # the 21x21 pixels around the centre
    ax.imshow(np.where(crop > 0, np.log1p(crop), np.nan), cmap="viridis", vmin=0)
    ax.set_facecolor("black")
    field = theory.receptive_field(stacks[name])[-1].size
    ax.set_title(f"{name}\nreceptive field {field}x{field}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("which input pixels reach the centre output (log of the gradient; black: none)")
fig.savefig(OUT / "04_receptive_fields.png", dpi=90)
plt.close(fig)
print("saved", OUT / "04_padding.png", OUT / "04_receptive_fields.png")
