# %% [markdown]
# # 1. Convolution in 1D
#
# A convolutional layer slides a small kernel along a signal and takes a weighted sum at every
# position. In one dimension, with a signal $x$ and a kernel $w$ of length $K$, the
# **discrete convolution** of mathematics is
#
# $$ (x * w)(i) = \sum_m x(i - m)\, w(m), $$
#
# and the **cross-correlation**, which deep-learning libraries (PyTorch, TensorFlow and
# `F.conv1d` here) call "convolution", is the same sum without the flip:
#
# $$ z(i) = \sum_{m=0}^{K-1} x(i + m)\, w(m). $$
#
# This tutorial works one small example by hand, builds the computational graph of
#
# $$ y = f^T (x * w), \qquad L = \tfrac12 (y - t)^2 $$
#
# with $x = [0, 0.7, 0.2, 0.8]$, $w = [-1, 1]$, $f = [1, 0.5, 0]$, $t = 1$, derives every
# gradient by hand, and checks them against the library's reverse-mode autograd.
#
# Run it as a script (`python tutorials/01_convolution_1d.py`) or open it as a notebook
# (`jupytext --to notebook`, or VS Code's "Run Cell").

# %%
import argparse
import sys
from pathlib import Path

import numpy as np

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor

parser = argparse.ArgumentParser(description="Tutorial 1: convolution in 1D")
parser.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
parser.add_argument("--out", default=None, help="folder for the pictures (default: tutorials/out)")
# As a script an unknown flag (a typo such as --output for --out) is an error; in a notebook
# the Jupyter kernel's own flags (-f kernel-<id>.json) are in sys.argv: parse_known_args skips them.
args = parser.parse_known_args()[0] if "ipykernel" in sys.modules else parser.parse_args()
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(args.out) if args.out else HERE / "out"
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The example by hand
#
# The kernel $w = [-1, 1]$ is a difference filter: $z(i) = x(i + 1) - x(i)$, the slope of
# the signal. With 'valid' positions only (the kernel must fit inside the signal), a
# signal of length 4 and a kernel of length 2 give $4 - 2 + 1 = 3$ outputs:
#
# | $i$ | window $x(i), x(i+1)$ | $z(i) = -x(i) + x(i+1)$ |
# |---|---|---|
# | 0 | 0.0, 0.7 | 0.7 |
# | 1 | 0.7, 0.2 | -0.5 |
# | 2 | 0.2, 0.8 | 0.6 |

# %%
x_values = np.array([0.0, 0.7, 0.2, 0.8], dtype=np.float32)
w_values = np.array([-1.0, 1.0], dtype=np.float32)
f_values = np.array([1.0, 0.5, 0.0], dtype=np.float32)
t = 1.0

# The discrete sum, written as two loops so that nothing is hidden.
z_by_hand = np.array([sum(x_values[i + m] * w_values[m] for m in range(2)) for i in range(3)])
print("z by hand, z(i) = sum_m x(i+m) w(m):", z_by_hand)

# The library: conv1d takes (batch, channels, length) signals and (out, in, K) kernels.
z_conv1d = F.conv1d(Tensor(x_values).reshape(1, 1, 4), Tensor(w_values).reshape(1, 1, 2)).reshape(3)
z_correlate = F.correlate1d(Tensor(x_values), Tensor(w_values), mode="valid")
print("F.conv1d (deep-learning 'convolution'):", z_conv1d.numpy())
print("F.correlate1d(mode='valid'):           ", z_correlate.numpy())
np.testing.assert_allclose(
    z_conv1d.numpy(),
    [0.7, -0.5, 0.6],
    atol=1e-6,
    err_msg="conv1d of the course example should be [0.7, -0.5, 0.6]",
)
np.testing.assert_allclose(z_correlate.numpy(), z_by_hand, atol=1e-6)

# %% [markdown]
# ### And the true convolution?
#
# True convolution flips the kernel: $(x * w)(i) = \sum_m x(i - m) w(m)$, i.e. it
# correlates with the reversed kernel $[1, -1]$, so every valid output changes sign:
# $[-0.7, 0.5, -0.6]$. The 'full' mode also keeps the positions where the kernel only
# partly overlaps the signal (zeros outside): $4 + 2 - 1 = 5$ outputs.

# %%
z_true_valid = F.convolve1d(Tensor(x_values), Tensor(w_values), mode="valid").numpy()
z_true_full = F.convolve1d(Tensor(x_values), Tensor(w_values), mode="full").numpy()
print("true convolution, valid:", z_true_valid)
print("true convolution, full: ", z_true_full)
np.testing.assert_allclose(
    z_true_valid,
    [-0.7, 0.5, -0.6],
    atol=1e-6,
    err_msg="true convolution = correlation with the flipped kernel",
)
np.testing.assert_allclose(z_true_full, np.convolve(x_values, w_values), atol=1e-6)
np.testing.assert_allclose(z_true_full, [0.0, -0.7, 0.5, -0.6, 0.8], atol=1e-6)

# %% [markdown]
# ## The computational graph
#
# ```
#   x ─┐
#      ├─[ z = x ⋆ w ]── z ──[ y = fᵀz ]── y ──[ L = ½(y − t)² ]── L
#   w ─┘                        f ─┘                 t ─┘
# ```
#
# **Forward.** $z = [0.7, -0.5, 0.6]$, $y = 1 \cdot 0.7 + 0.5 \cdot (-0.5) + 0 \cdot 0.6 = 0.45$,
# $L = \tfrac12 (0.45 - 1)^2 = 0.15125$.
#
# **Backward** (chain rule, from the loss back to the inputs):
#
# * $\partial L / \partial y = y - t = -0.55$
# * $\partial L / \partial z_i = (\partial L / \partial y)\, f_i = [-0.55, -0.275, 0]$
# * $\partial L / \partial f_i = (\partial L / \partial y)\, z_i = [-0.385, 0.275, -0.33]$
# * $\partial L / \partial w_m = \sum_i (\partial L / \partial z_i)\, x(i + m)$: a
#   cross-correlation of the input with the output gradient,
#   $w_0$: $-0.55 \cdot 0 - 0.275 \cdot 0.7 + 0 \cdot 0.2 = -0.1925$,
#   $w_1$: $-0.55 \cdot 0.7 - 0.275 \cdot 0.2 + 0 \cdot 0.8 = -0.44$
# * $\partial L / \partial x_j = \sum_i (\partial L / \partial z_i)\, w(j - i)$: a **full
#   true convolution** of the output gradient with the kernel,
#   $[0.55, -0.275, -0.275, 0]$ (e.g. $x_1$: $-0.55 \cdot 1 + (-0.275) \cdot (-1) = -0.275$).
#
# The gradient of a correlation with respect to its input is a convolution, and the other
# way round: the two operations are each other's transposes (tutorial 6 makes this exact).

# %%
x = Tensor(x_values, requires_grad=True)
w = Tensor(w_values, requires_grad=True)
f = Tensor(f_values, requires_grad=True)

z = F.conv1d(x.reshape(1, 1, 4), w.reshape(1, 1, 2)).reshape(3)
y = (f * z).sum()
loss = (y - t) ** 2 / 2
loss.backward()
print(f"forward: y = {y.item():.4f}, L = {loss.item():.5f}")

dL_dy = y.item() - t
dL_dz = dL_dy * f_values
dL_df = dL_dy * z_by_hand
dL_dw = np.array([sum(dL_dz[i] * x_values[i + m] for i in range(3)) for m in range(2)])
dL_dx = np.convolve(dL_dz, w_values, mode="full")  # sum_i dL/dz_i w(j - i)
print("by hand:  dL/dx =", dL_dx, " dL/dw =", dL_dw, " dL/df =", dL_df)
print("autograd: dL/dx =", x.grad.numpy(), " dL/dw =", w.grad.numpy(), " dL/df =", f.grad.numpy())

assert abs(y.item() - 0.45) < 1e-6, f"y should be 0.45, got {y.item()}"
assert abs(loss.item() - 0.15125) < 1e-6, f"L should be 0.15125, got {loss.item()}"
np.testing.assert_allclose(dL_dz, [-0.55, -0.275, 0.0], atol=1e-6)
np.testing.assert_allclose(w.grad.numpy(), [-0.1925, -0.44], atol=1e-6, err_msg="dL/dw")
np.testing.assert_allclose(x.grad.numpy(), [0.55, -0.275, -0.275, 0.0], atol=1e-6, err_msg="dL/dx")
np.testing.assert_allclose(f.grad.numpy(), [-0.385, 0.275, -0.33], atol=1e-6, err_msg="dL/df")
np.testing.assert_allclose(x.grad.numpy(), dL_dx, atol=1e-6)
np.testing.assert_allclose(w.grad.numpy(), dL_dw, atol=1e-6)

# %% [markdown]
# ## One step of gradient descent
#
# The gradient says how to change the kernel to bring $y$ closer to $t$:
# $w \leftarrow w - \eta\, \partial L / \partial w$. A few steps train this one-kernel
# "network" until $y \approx t$.

# %%
lr = 0.5
kernel = w_values.copy()
losses = []
for _ in range(10 if args.quick else 40):
    wk = Tensor(kernel, requires_grad=True)
    out = (
        Tensor(f_values) * F.conv1d(Tensor(x_values).reshape(1, 1, 4), wk.reshape(1, 1, 2)).reshape(3)
    ).sum()
    step_loss = (out - t) ** 2 / 2
    step_loss.backward()
    losses.append(step_loss.item())
    kernel = kernel - lr * wk.grad.numpy()
print(f"loss {losses[0]:.4f} -> {losses[-1]:.6f}, learned kernel {kernel}")
assert losses[-1] < 0.01 * losses[0], "gradient descent on w should drive the loss towards 0"

# %% [markdown]
# ## Picture
#
# The signal, the kernel, the correlation (what `conv1d` computes), the true convolution,
# and the graph with forward values (black) and gradients (red).

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig = plt.figure(figsize=(13, 6.5))
grid = fig.add_gridspec(2, 4, height_ratios=[1, 1.1])
panels = [
    ("signal x", x_values, "C0", "sample i", "x(i)"),
    ("kernel w", w_values, "C0", "tap m", "w(m)"),
    ("z = x ⋆ w  (conv1d, valid)", z_by_hand, "C0", "output position i", "z(i) = x(i+1) - x(i)"),
    ("true convolution x * w  (full)", z_true_full, "C1", "output position i", "(x * w)(i)"),
]
for column, (title, values, colour, xlabel, ylabel) in enumerate(panels):
    ax = fig.add_subplot(grid[0, column])
    ax.stem(range(len(values)), values, linefmt=colour + "-", markerfmt=colour + "o", basefmt="grey")
    ax.set_title(title)
    ax.set_xticks(range(len(values)))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
ax = fig.add_subplot(grid[1, :])
ax.axis("off")
ax.set_xlim(0, 10)
ax.set_ylim(-0.4, 3.8)
nodes = {"x": (0.6, 3), "w": (0.6, 1), "z": (3.3, 2), "f": (3.3, 0.4), "y": (6, 2), "t": (6, 0.4),
         "L": (8.8, 2)}
values = {
    "x": "[0, .7, .2, .8]",
    "w": "[-1, 1]",
    "z": "[.7, -.5, .6]",
    "f": "[1, .5, 0]",
    "y": f"{y.item():.2f}",
    "t": "1 (the target)",
    "L": f"{loss.item():.4f}",
}
grads = {
    "x": "[.55, -.275, -.275, 0]",
    "w": "[-.1925, -.44]",
    "z": "[-.55, -.275, 0]",
    "f": "[-.385, .275, -.33]",
    "y": f"{dL_dy:.2f}",
    "t": "",
    "L": "1",
}
for name, (cx, cy) in nodes.items():
    ax.text(
        cx, cy, name, ha="center", va="center", fontsize=12, bbox=dict(boxstyle="circle", fc="lightyellow")
    )
    ax.text(cx, cy - 0.5, values[name], ha="center", va="top", fontsize=9)
    ax.text(cx, cy + 0.5, grads[name], ha="center", fontsize=9, color="red")
for a, b in [("x", "z"), ("w", "z"), ("z", "y"), ("f", "y"), ("y", "L"), ("t", "L")]:
    ax.annotate("", xy=nodes[b], xytext=nodes[a], arrowprops=dict(arrowstyle="->", shrinkA=14, shrinkB=14))
ax.set_title("computational graph of y = fᵀ(x ⋆ w), L = ½(y − t)²: values (black), gradients dL/d· (red)")
fig.tight_layout()
fig.savefig(OUT / "01_convolution_1d.png", dpi=100)
plt.close(fig)
print("saved", OUT / "01_convolution_1d.png")
