# %% [markdown]
# # 2. The kernel flip: convolution versus cross-correlation
#
# Two operations go by the name "convolution":
#
# * **true convolution** (signal processing, mathematics) flips the kernel:
#   $S(i, j) = (I * K)(i, j) = \sum_m \sum_n I(i - m, j - n)\, K(m, n)$;
# * **cross-correlation** (what deep-learning libraries call convolution, `F.conv2d`)
#   does not: $S(i, j) = (I \star K)(i, j) = \sum_m \sum_n I(i + m, j + n)\, K(m, n)$.
#
# This tutorial shows
#
# 1. the difference on an impulse (correlation draws the kernel upside down, convolution draws it
#    the right way up),
# 2. that true convolution is **commutative**, $I * K = K * I$, and correlation is not,
# 3. the identity between them, $I * K = I \star \mathrm{rot180}(K)$,
# 4. why it does not matter for a network: a correlation layer trained to imitate a true
#    convolution simply learns the flipped kernel.

# %%
import argparse
import sys
from pathlib import Path

import numpy as np

import tinygrad_cnn
import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor, optim

parser = argparse.ArgumentParser(description="Tutorial 2: the kernel flip")
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
# ## 1. The impulse response
#
# An image that is 0 everywhere except a single 1 (an *impulse*) shows what an operation does
# with its kernel. We use an asymmetric 3x3 kernel with the numbers 1..9 so that a flip is
# easy to see. True convolution copies the kernel onto the impulse as it is (the impulse is the
# identity of convolution); cross-correlation copies it rotated by 180 degrees.

# %%
K = np.arange(1, 10, dtype=np.float32).reshape(3, 3)
impulse = np.zeros((7, 7), dtype=np.float32)
impulse[3, 3] = 1.0

conv_response = F.convolve2d(Tensor(impulse), Tensor(K), mode="same").numpy()
corr_response = F.correlate2d(Tensor(impulse), Tensor(K), mode="same").numpy()
print("kernel K:\n", K)
print("true convolution of the impulse (centre 3x3):\n", conv_response[2:5, 2:5])
print("cross-correlation of the impulse (centre 3x3):\n", corr_response[2:5, 2:5])
np.testing.assert_array_equal(conv_response[2:5, 2:5], K, err_msg="convolution reproduces K")
np.testing.assert_array_equal(corr_response[2:5, 2:5], K[::-1, ::-1], err_msg="correlation gives K rotated")

# %% [markdown]
# ## 2. Commutativity
#
# Substituting $m' = i - m$ in the convolution sum gives
# $\sum_m I(i - m) K(m) = \sum_{m'} K(i - m') I(m')$: the roles of image and kernel can be
# swapped, $I * K = K * I$ (in 'full' mode, where every overlap is kept). Correlation has no
# such symmetry: swapping the arguments reverses the output,
# $(K \star I)(i) = (I \star K)(-i)$.

# %%
size = 12 if args.quick else 24
image = rng.standard_normal((size, size)).astype(np.float32)
kernel = rng.standard_normal((3, 4)).astype(np.float32)

conv_ik = F.convolve2d(Tensor(image), Tensor(kernel), mode="full").numpy()
conv_ki = F.convolve2d(Tensor(kernel), Tensor(image), mode="full").numpy()
corr_ik = F.correlate2d(Tensor(image), Tensor(kernel), mode="full").numpy()
corr_ki = F.correlate2d(Tensor(kernel), Tensor(image), mode="full").numpy()
print(
    f"full outputs {conv_ik.shape}: max |I*K - K*I| = {np.abs(conv_ik - conv_ki).max():.2e}, "
    f"max |I⋆K - K⋆I| = {np.abs(corr_ik - corr_ki).max():.2f}"
)
np.testing.assert_allclose(conv_ik, conv_ki, atol=1e-4, err_msg="true convolution is commutative")
assert np.abs(corr_ik - corr_ki).max() > 0.1, "correlation should NOT be commutative"
np.testing.assert_allclose(
    corr_ki,
    corr_ik[::-1, ::-1],
    atol=1e-4,
    err_msg="swapping the arguments of a correlation reverses its output",
)

# %% [markdown]
# ## 3. The identity between them
#
# Write the flipped kernel $\tilde K(m, n) = K(-m, -n)$ (a rotation by 180 degrees). Then
# $(I * K)(i) = \sum_m I(i - m) K(m) = \sum_{m} I(i + m) \tilde K(m) = (I \star \tilde K)(i)$:
# **a convolution is a correlation with the rotated kernel**, and vice versa.
# `F.conv2d` (the layer) is a correlation, so it gives the same numbers as `F.correlate2d`.

# %%
rotated = np.ascontiguousarray(kernel[::-1, ::-1])
for mode in ("full", "valid"):
    a = F.convolve2d(Tensor(image), Tensor(kernel), mode=mode).numpy()
    b = F.correlate2d(Tensor(image), Tensor(rotated), mode=mode).numpy()
    print(f"mode={mode:5s}: max |I * K - I ⋆ rot180(K)| = {np.abs(a - b).max():.2e}")
    np.testing.assert_allclose(a, b, atol=1e-5, err_msg=f"convolution = correlation with rot180, {mode}")

layer = F.conv2d(Tensor(image[None, None]), Tensor(kernel[None, None])).numpy()[0, 0]
np.testing.assert_allclose(
    layer,
    F.correlate2d(Tensor(image), Tensor(kernel), mode="valid").numpy(),
    atol=1e-5,
    err_msg="conv2d is a cross-correlation",
)
print("F.conv2d == F.correlate2d(mode='valid'): the deep-learning 'convolution' does not flip")

# %% [markdown]
# ## 4. Why learned kernels make the distinction harmless
#
# Suppose the "right" feature detector is a true convolution with some kernel $K$. A
# correlation layer can compute exactly the same function with the weights $\mathrm{rot180}(K)$,
# and gradient descent finds them: below, a single `conv2d` kernel is trained (Adam, mean
# squared error) to reproduce the output of a true convolution with $K$. The learned weights
# converge to $K$ rotated by 180 degrees, and the fit is perfect. Because the kernel is
# learned, nothing is lost by skipping the flip; libraries skip it because it is one index
# operation less and the formula reads more naturally.

# %%
n_images = 8 if args.quick else 32
steps = 400
inputs = rng.standard_normal((n_images, 1, 16, 16)).astype(np.float32)
targets = np.stack([F.convolve2d(Tensor(im[0]), Tensor(K), mode="valid").numpy() for im in inputs])[:, None]

weight = Tensor(rng.normal(0, 0.1, (1, 1, 3, 3)).astype(np.float32), requires_grad=True)
optimizer = optim.Adam([weight], lr=0.1)
history = []
for _ in range(steps):
    optimizer.zero_grad()
    loss = F.mse_loss(F.conv2d(Tensor(inputs), weight), Tensor(targets))
    loss.backward()
    optimizer.step()
    history.append(loss.item())
learned = weight.numpy()[0, 0]
print(f"training loss {history[0]:.2f} -> {history[-1]:.2e}")
print("learned conv2d weights:\n", np.round(learned, 2))
print("rot180(K):\n", K[::-1, ::-1])
np.testing.assert_allclose(
    learned, K[::-1, ::-1], atol=0.05, err_msg="a correlation layer learns the flipped kernel"
)

# %% [markdown]
# ## Picture
#
# Top: the kernel, and the two impulse responses. Bottom: the training loss, and the learned
# weights next to the kernel they imitate.

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from tinygrad_cnn import viz


def show(ax, array, title):
    image = ax.imshow(array, cmap="viridis")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    # every value written on its cell, black on light cells and white on dark ones
    viz.annotate_cells(ax, image, array, fmt=lambda v: f"{v:.0f}" if abs(v - round(v)) < 0.05 else f"{v:.1f}",
                       skip_zeros=array.shape[0] > 3)


fig, axes = plt.subplots(2, 3, figsize=(11, 7.5))
show(axes[0, 0], K, "kernel K")
show(axes[0, 1], conv_response, "true convolution of an impulse:\nK as it is")
show(axes[0, 2], corr_response, "cross-correlation (conv2d) of an impulse:\nK rotated 180°")
axes[1, 0].semilogy(history)
axes[1, 0].set_title("training a conv2d layer to imitate\na true convolution with K", fontsize=10)
axes[1, 0].set_xlabel("step")
axes[1, 0].set_ylabel("MSE")
show(axes[1, 1], learned, "learned conv2d weights")
show(axes[1, 2], K[::-1, ::-1], "rot180(K)")
fig.tight_layout()
fig.savefig(OUT / "02_kernel_flip.png", dpi=100)
plt.close(fig)
print("saved", OUT / "02_kernel_flip.png")
