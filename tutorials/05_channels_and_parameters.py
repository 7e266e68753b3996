# %% [markdown]
# # 5. Channels and parameters
#
# Real inputs have several channels (red, green, blue), and every convolution layer produces
# several feature maps. A convolution layer with $C_{in}$ input maps and $K$ kernels of size
# $F \times F$ therefore has kernels of shape $(C_{in}, F, F)$, one per output map:
#
# $$ y_k(i, j) = b_k + \sum_{c=1}^{C_{in}} \sum_{m, n} x_c(i + m, j + n)\, w_{k, c}(m, n), $$
#
# and $C_{in} F^2 K + K$ parameters, **whatever the image size** (weight sharing). The course
# examples: 3 input maps and 16 kernels of 5x5 give $3 \cdot 25 \cdot 16 + 16 = 1216$
# parameters; 3 input maps and two 3x3 kernels give $3 \cdot 9 \cdot 2 + 2 = 56$.
#
# This tutorial checks the multi-channel sum, shows the 1x1 convolution as a per-pixel dense
# layer over channels, compares **dense**, **locally connected** (local but unshared) and
# **convolutional** (local and shared) layers on the same input and output, and measures what
# the **depthwise-separable** factorisation saves.

# %%
import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_sample_image

import tinygrad_cnn
import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor, nn, theory

parser = argparse.ArgumentParser(description="Tutorial 5: channels and parameters")
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
# ## A multi-channel kernel sums over the input channels
#
# Each output map is the sum of one 2-D correlation per input channel, plus the bias.

# %%
x = Tensor(rng.standard_normal((1, 3, 10, 10)).astype(np.float32))
layer = nn.Conv2d(3, 2, 3)  # 3 input maps, two 3x3 kernels
y = layer(x).numpy()[0]
w, b = layer.weight.numpy(), layer.bias.numpy()
print(f"input {x.shape}, weight {w.shape} (out, in, kH, kW), bias {b.shape} -> output {y.shape}")
for k in range(2):
    by_channel = sum(F.correlate2d(x[0, c], Tensor(w[k, c]), mode="valid").numpy() for c in range(3))
    np.testing.assert_allclose(
        y[k], by_channel + b[k], atol=1e-5, err_msg="output map k = sum over channels of correlations + bias"
    )
print("each output map = sum over the 3 input channels of a 2-D correlation, + its bias: checked")

# %% [markdown]
# ## Parameter counts: 1216 and 56
#
# `theory.conv_parameters` is the formula, `theory.count_parameters` counts the tensors of a
# real layer. The count does not depend on the image: the same layer runs on any size.

# %%
for c_in, k, f, expected in [(3, 16, 5, 1216), (3, 2, 3, 56)]:
    conv = nn.Conv2d(c_in, k, f)
    counted = theory.count_parameters(conv)
    formula = theory.conv_parameters(c_in, k, f)
    print(f"Conv2d({c_in}, {k}, {f}): {c_in}*{f}*{f}*{k} + {k} = {formula} (formula), {counted} (counted)")
    assert counted == formula == expected, f"Conv2d({c_in}, {k}, {f}) should have {expected} parameters"
conv = nn.Conv2d(3, 16, 5)
for side in (32, 64):
    shape = conv(Tensor.zeros(1, 3, side, side)).shape
    print(f"  the same 1216 parameters on a {side}x{side} image -> output {shape}")

# %% [markdown]
# ## The 1x1 convolution: a dense layer applied at every pixel
#
# With $F = 1$ the sum over $(m, n)$ disappears: $y_k(i, j) = b_k + \sum_c w_{k,c}\, x_c(i, j)$.
# It mixes the channels of each pixel and never looks at the neighbours: the same linear map
# (a `Linear(C_in, K)`) at every position. Networks use it to change the number of channels
# cheaply (bottlenecks, Inception, the pointwise half of a separable convolution). On a
# colour photograph, a 1x1 convolution is a colour transform: here the grey luminance
# $0.299 R + 0.587 G + 0.114 B$ and a "redness" map $R - (G + B) / 2$.

# %%
rgb = load_sample_image("flower.jpg")
width = 128 if args.quick else 256
height = round(rgb.shape[0] * width / rgb.shape[1])
photo = (
    np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.LANCZOS), dtype=np.float32) / 255
)
photo = Tensor(np.ascontiguousarray(photo.transpose(2, 0, 1))[None])  # (1, 3, H, W)
colour_mix = Tensor(np.array([[0.299, 0.587, 0.114], [1.0, -0.5, -0.5]], dtype=np.float32)[:, :, None, None])
mixed = F.conv2d(photo, colour_mix).numpy()[0]
linear = nn.Linear(3, 2)
linear.weight = nn.Parameter(colour_mix.reshape(2, 3))
linear.bias = nn.Parameter(Tensor.zeros(2))
per_pixel = linear(photo.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).numpy()[0]  # Linear over channels
np.testing.assert_allclose(mixed, per_pixel, atol=1e-5, err_msg="1x1 convolution == Linear at every pixel")
print(
    f"1x1 convolution of a {tuple(photo.shape)} photo -> {mixed.shape}: equals nn.Linear(3, 2) on every pixel"
)
print(
    f"  1x1 Conv2d(256, 64) has {theory.conv_parameters(256, 64, 1):,} parameters; 3x3 would have "
    f"{theory.conv_parameters(256, 64, 3):,}"
)

# %% [markdown]
# ## Dense versus locally connected versus convolution
#
# Take a 32x32 RGB input and 16 output maps of 28x28 (5x5 windows, valid):
#
# * **dense**: every output unit is connected to every input value,
#   $(3 \cdot 32 \cdot 32) \cdot (16 \cdot 28 \cdot 28)$ weights plus one bias per output;
# * **locally connected**: every output unit sees only its 5x5x3 window, but each position has
#   its own kernel: $28 \cdot 28 \cdot (3 \cdot 25 \cdot 16 + 16)$;
# * **convolution**: local *and* shared: 1216, as above.
#
# Locality divides the count by (input size / window size); sharing divides it again by the
# number of positions. The locally connected layer computes the same thing as the
# convolution when all its kernels are equal, which we check.

# %%
c_in, side, k, f = 3, 32, 16, 5
o = side - f + 1
dense_params = (c_in * side * side) * (k * o * o) + k * o * o
local = nn.LocallyConnected2d(c_in, k, (side, side), f)
local_params = theory.count_parameters(local)
conv_params = theory.count_parameters(nn.Conv2d(c_in, k, f))
print(f"input 3x32x32 -> output 16x28x28 ({k * o * o:,} units)")
print(f"  dense:             {dense_params:>12,}")
print(f"  locally connected: {local_params:>12,}  = 28*28 * 1216")
print(f"  convolution:       {conv_params:>12,}")
assert local_params == o * o * 1216 == 953_344, "locally connected = positions x conv parameters"
assert dense_params == 38_547_712
small_dense = nn.Linear(c_in * 8 * 8, k * 4 * 4)  # a small one we can afford to build
assert theory.count_parameters(small_dense) == (c_in * 64) * (k * 16) + k * 16

shared = nn.Conv2d(c_in, k, f)
local_copy = nn.LocallyConnected2d(c_in, k, (side, side), f)
weights = np.broadcast_to(shared.weight.numpy(), (o, o, k, c_in, f, f))
local_copy.weight = nn.Parameter(Tensor(np.ascontiguousarray(weights)))
local_copy.bias = nn.Parameter(
    Tensor(np.ascontiguousarray(np.broadcast_to(shared.bias.numpy()[:, None, None], (k, o, o))))
)
image = Tensor(rng.standard_normal((2, c_in, side, side)).astype(np.float32))
np.testing.assert_allclose(
    local_copy(image).numpy(),
    shared(image).numpy(),
    atol=1e-4,
    err_msg="a locally connected layer with identical kernels is a convolution",
)
print("locally connected with the same kernel everywhere == convolution: checked")

# %% [markdown]
# ## Depthwise-separable convolution
#
# A standard convolution filters space and mixes channels at once: $C_{in} F^2 C_{out}$
# weights. MobileNet and Xception factorise it into
#
# 1. a **depthwise** $F \times F$ convolution, one kernel per input channel
#    (`groups = C_in`): $C_{in} F^2$ weights, and
# 2. a **pointwise** 1x1 convolution mixing the channels: $C_{in} C_{out}$ weights.
#
# The ratio of weights (and of multiply-adds) is
# $\frac{C_{in} F^2 + C_{in} C_{out}}{C_{in} F^2 C_{out}} = \frac{1}{C_{out}} + \frac{1}{F^2}$,
# nearly 8 times fewer for 3x3 kernels and 64 output channels (at most 9 times, as $C_{out}$ grows).

# %%
c_in, c_out, f = 32, 64, 3
full = nn.Conv2d(c_in, c_out, f, padding=1)
separable = nn.SeparableConv2d(c_in, c_out, f, padding=1)
n_full, n_sep = theory.count_parameters(full), theory.count_parameters(separable)
print(
    f"Conv2d({c_in}, {c_out}, {f}): {n_full:,} parameters; SeparableConv2d: {n_sep:,} "
    f"(depthwise {theory.count_parameters(separable.depthwise):,} + pointwise "
    f"{theory.count_parameters(separable.pointwise):,}), {n_full / n_sep:.1f}x fewer"
)
assert n_full == 18_496 and n_sep == 2_400
assert theory.count_parameters(separable.depthwise) == c_in * f * f
depthwise = nn.DepthwiseConv2d(c_in, f, padding=1)
assert depthwise.weight.shape == (c_in, 1, f, f), "one 3x3 kernel per channel"
side = 16 if args.quick else 56
macs_full = theory.conv_macs(c_in, c_out, f, side)
macs_sep = theory.conv_macs(c_in, c_in, f, side, groups=c_in) + theory.conv_macs(c_in, c_out, 1, side)
ratio = macs_sep / macs_full
print(
    f"multiply-adds on a {side}x{side} map: {macs_full:,} vs {macs_sep:,}: ratio {ratio:.4f} "
    f"= 1/{c_out} + 1/{f * f} = {1 / c_out + 1 / f**2:.4f}"
)
assert abs(ratio - (1 / c_out + 1 / f**2)) < 1e-12
x = Tensor(rng.standard_normal((1, c_in, side, side)).astype(np.float32))
assert separable(x).shape == full(x).shape == (1, c_out, side, side)

# Each depthwise output channel only ever sees its own input channel:
x_one = np.zeros((1, c_in, side, side), dtype=np.float32)
x_one[0, 5] = rng.standard_normal((side, side))
out = depthwise(Tensor(x_one)).numpy()[0] - depthwise.bias.numpy()[:, None, None]
assert np.abs(np.delete(out, 5, axis=0)).max() < 1e-6, "depthwise: channel 5 only reaches output 5"

# %% [markdown]
# ## Pictures
#
# `05_parameters.png`: parameter counts (log scale). `05_one_by_one.png`: a photograph and the
# two maps its 1x1 convolution computes.

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
names = ["dense", "locally\nconnected", "Conv2d\n5x5"]
counts = [dense_params, local_params, conv_params]
bars = axes[0].bar(names, counts, color=["C3", "C1", "C0"])
axes[0].set_yscale("log")
axes[0].bar_label(bars, [f"{c:,}" for c in counts])
axes[0].set_title("3x32x32 -> 16x28x28: parameters (log scale)")
names = [f"Conv2d({c_in}, {c_out}, 3)", "depthwise 3x3", "pointwise 1x1", "separable\n(sum)"]
counts = [
    n_full,
    theory.count_parameters(separable.depthwise),
    theory.count_parameters(separable.pointwise),
    n_sep,
]
bars = axes[1].bar(names, counts, color=["C0", "C2", "C2", "C1"])
axes[1].bar_label(bars, [f"{c:,}" for c in counts])
axes[1].set_title(f"depthwise-separable: {n_full / n_sep:.1f}x fewer parameters")
fig.tight_layout()
fig.savefig(OUT / "05_parameters.png", dpi=90)
plt.close(fig)

fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
axes[0].imshow(photo.numpy()[0].transpose(1, 2, 0))
axes[0].set_title("RGB input (3 channels)")
axes[1].imshow(mixed[0], cmap="gray")
axes[1].set_title("1x1 conv, kernel [0.299, 0.587, 0.114]")
bound = np.abs(mixed[1]).max()
axes[2].imshow(mixed[1], cmap="RdBu_r", vmin=-bound, vmax=bound)
axes[2].set_title("1x1 conv, kernel [1, -0.5, -0.5]: redness")
for ax in axes:
    ax.axis("off")
fig.tight_layout()
fig.savefig(OUT / "05_one_by_one.png", dpi=90)
plt.close(fig)
print("saved", OUT / "05_parameters.png", OUT / "05_one_by_one.png")
