# %% [markdown]
# # 6. Convolution as a sparse matrix
#
# A convolution is linear in its input, so it is a matrix product: flatten the image $x$ into
# a vector and there is a matrix $M$ (depending only on the kernel) with
#
# $$ \mathrm{conv2d}(x, w) = M x . $$
#
# Row $(i, j)$ of $M$ holds the kernel weights at the columns of the pixels that output
# $(i, j)$ sees, and zeros elsewhere. Because every output row applies the same kernel shifted
# by one pixel, $M$ is **doubly block Toeplitz**: a block Toeplitz matrix (the block at block
# position $(i, p)$ depends only on $p - i$, the row offset in the kernel) whose blocks are
# themselves Toeplitz (constant along diagonals). `theory.conv_matrix` builds it.
#
# Two consequences:
#
# * the **transpose** $M^T$ maps outputs back to inputs: that is the **transposed
#   convolution** (`F.conv_transpose2d`, U-Net's up-convolution), and also exactly the
#   gradient of the convolution with respect to its input ($\partial L/\partial x = M^T\,
#   \partial L/\partial y$);
# * the **cost argument**: $M$ is almost all zeros. Detecting vertical edges in a 320x280
#   image with the 2-tap kernel $[-1, 1]$ takes $319 \cdot 280 = 89{,}320$ outputs of
#   2 multiplications and 1 addition: 267,960 operations. As a dense matrix,
#   $M$ would have $(320 \cdot 280) \times (319 \cdot 280) \approx 8.0 \cdot 10^9$ entries
#   (32 GB in float32), all but 178,640 of them zero.

# %%
import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_sample_image

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor, theory

parser = argparse.ArgumentParser(description="Tutorial 6: convolution as a sparse matrix")
parser.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
parser.add_argument("--out", default=None, help="folder for the pictures (default: tutorials/out)")
# As a script an unknown flag (a typo such as --output for --out) is an error; in a notebook
# the Jupyter kernel's own flags (-f kernel-<id>.json) are in sys.argv: parse_known_args skips them.
args = parser.parse_known_args()[0] if "ipykernel" in sys.modules else parser.parse_args()
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(args.out) if args.out else HERE / "out"
OUT.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)

# %% [markdown]
# ## A small example: 4x4 input, 3x3 kernel
#
# The output is 2x2, so $M$ has 4 rows (outputs) and 16 columns (input pixels), with 9
# non-zeros per row.

# %%
kernel = np.arange(1, 10, dtype=np.float32).reshape(3, 3)
M = theory.conv_matrix((4, 4), kernel)
print(f"M: {M.shape}, {np.count_nonzero(M)} non-zeros of {M.size}")
print(M.astype(int))
x = rng.standard_normal((4, 4)).astype(np.float32)
y_matrix = M @ x.ravel()
y_conv = F.conv2d(Tensor(x[None, None]), Tensor(kernel[None, None])).numpy().ravel()
print("M @ x:      ", y_matrix)
print("conv2d(x, w):", y_conv)
np.testing.assert_allclose(y_matrix, y_conv, atol=1e-5, err_msg="conv_matrix @ x == conv2d")
assert np.all(np.count_nonzero(M, axis=1) == 9), "each output sees 9 pixels"

# %% [markdown]
# ## The doubly block Toeplitz structure
#
# With a 5x5 input and a 3x3 kernel (output 3x3), $M$ is 9x25. Cut it into a 3x5 grid of blocks of
# shape 3x5: block $(i, p)$ maps input row $p$ to output row $i$. It is zero unless
# $0 \le p - i < 3$, and then it is the Toeplitz matrix made from kernel row $p - i$. Same
# offset, same block: block Toeplitz. Inside each block, entries are constant along
# diagonals: Toeplitz.

# %%
H = W = 5
k = 3
M5 = theory.conv_matrix((H, W), kernel)
oh, ow = H - k + 1, W - k + 1
blocks = M5.reshape(oh, ow, H, W).transpose(0, 2, 1, 3)  # blocks[i, p] is an (ow, W) block
for i in range(oh):
    for p in range(H):
        block = blocks[i, p]
        if 0 <= p - i < k:
            np.testing.assert_array_equal(block, blocks[0, p - i], err_msg="block Toeplitz: depends on p - i")
            for j in range(ow):  # Toeplitz inside: row j is kernel row (p - i) shifted by j
                expected = np.zeros(W, dtype=np.float32)
                expected[j : j + k] = kernel[p - i]
                np.testing.assert_array_equal(block[j], expected)
        else:
            assert not block.any(), "blocks outside the kernel's reach are zero"
print(f"M for a {H}x{W} input: {M5.shape}, doubly block Toeplitz: checked")
print("block (0, 0) = Toeplitz matrix of kernel row 0:\n", blocks[0, 0].astype(int))

# %% [markdown]
# ## The transpose is the transposed convolution
#
# $M^T$ takes a 3x3 output back to a 5x5 input: every output value is spread over the pixels
# it came from, weighted by the kernel. `F.conv_transpose2d` computes exactly this, without
# building $M$. With stride 2 the convolution downsamples and its transpose upsamples, which is
# why U-Net and GAN generators use it as a learnable "up-convolution". The adjoint identity
# $\langle M u, v \rangle = \langle u, M^T v \rangle$ holds for every $u, v$.

# %%
y = rng.standard_normal((oh, ow)).astype(np.float32)
back_matrix = (M5.T @ y.ravel()).reshape(H, W)
back_conv = F.conv_transpose2d(Tensor(y[None, None]), Tensor(kernel[None, None])).numpy()[0, 0]
np.testing.assert_allclose(back_matrix, back_conv, atol=1e-4, err_msg="conv_matrix.T @ y == conv_transpose2d")
print(f"M.T @ y == conv_transpose2d(y): {y.shape} -> {back_conv.shape}: checked")

weight = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)  # 3 channels in, 2 out
M_strided = theory.conv_matrix((3, 8, 8), weight, stride=2, padding=1)
u = rng.standard_normal((3, 8, 8)).astype(np.float32)
down = F.conv2d(Tensor(u[None]), Tensor(weight), stride=2, padding=1).numpy()[0]
np.testing.assert_allclose(M_strided @ u.ravel(), down.ravel(), atol=1e-4)
v = rng.standard_normal(down.shape).astype(np.float32)
up = F.conv_transpose2d(Tensor(v[None]), Tensor(weight), stride=2, padding=1, output_padding=1).numpy()[0]
np.testing.assert_allclose(M_strided.T @ v.ravel(), up.ravel(), atol=1e-4)
assert abs(np.dot(M_strided @ u.ravel(), v.ravel()) - np.dot(u.ravel(), M_strided.T @ v.ravel())) < 1e-3
print(
    f"stride 2, 3 -> 2 channels: conv2d {u.shape} -> {down.shape}, conv_transpose2d {v.shape} -> {up.shape}, "
    f"M {M_strided.shape}: both checked"
)

# The transpose is also the gradient: backward through conv2d computes M^T (dL/dy).
x_var = Tensor(u[None], requires_grad=True)
(F.conv2d(x_var, Tensor(weight), stride=2, padding=1) * Tensor(v[None])).sum().backward()
np.testing.assert_allclose(
    x_var.grad.numpy()[0].ravel(), M_strided.T @ v.ravel(), atol=1e-4, err_msg="dL/dx = M^T dL/dy"
)
print("dL/dx of conv2d == M.T @ dL/dy: checked")

# %% [markdown]
# ## The cost argument: a 320x280 edge detector
#
# The photograph is cropped and resized to 280 rows and 320 columns. The kernel $[-1, 1]$ (shape 1x2)
# computes $x(i, j + 1) - x(i, j)$, a horizontal derivative that responds to vertical edges.

# %%
rgb = load_sample_image("china.jpg")[:, 40:528]  # 427 x 488: the aspect ratio of 280 x 320
grey = (
    np.asarray(
        Image.fromarray(rgb).convert("L").resize((320, 280), Image.Resampling.LANCZOS), dtype=np.float32
    )
    / 255
)
rows, cols = grey.shape
edge = np.array([[-1.0, 1.0]], dtype=np.float32)
outputs = rows * (cols - 1)
ops = outputs * (2 + 1)  # two multiplications and one addition per output
dense_entries = (rows * cols) * outputs
nonzeros = 2 * outputs
print(f"image {rows}x{cols}, kernel [-1, 1]: {rows}x{cols - 1} = {outputs:,} outputs")
print(f"  convolution: {outputs:,} x (2 mult + 1 add) = {ops:,} operations")
print(
    f"  dense matrix: ({rows}*{cols}) x ({rows}*{cols - 1}) = {dense_entries:,} entries "
    f"~ {dense_entries:.1e} "
    f"({dense_entries * 4 / 1e9:.0f} GB as float32), of which {nonzeros:,} non-zero "
    f"({nonzeros / dense_entries:.4%})"
)
assert outputs == 319 * 280 == 89_320 and ops == 267_960, "the course's 267,960 operations"
assert dense_entries == 8_003_072_000 and abs(dense_entries / 8.0e9 - 1) < 0.001, "about 8 billion entries"

start = time.perf_counter()
edges = F.conv2d(Tensor(grey[None, None]), Tensor(edge[None, None])).numpy()[0, 0]
conv_seconds = time.perf_counter() - start
M_sparse = theory.conv_matrix((rows, cols), edge, sparse=True)  # scipy.sparse CSR: only the non-zeros
start = time.perf_counter()
edges_sparse = (M_sparse @ grey.ravel()).reshape(rows, cols - 1)
sparse_seconds = time.perf_counter() - start
print(f"  sparse M: shape {M_sparse.shape}, {M_sparse.nnz:,} stored entries")
print(f"  conv2d {conv_seconds * 1e3:.2f} ms, sparse matrix product {sparse_seconds * 1e3:.2f} ms")
assert M_sparse.shape == (outputs, rows * cols) and M_sparse.nnz == nonzeros
np.testing.assert_allclose(edges_sparse, edges, atol=1e-5, err_msg="sparse M @ x == conv2d")
np.testing.assert_allclose(edges, grey[:, 1:] - grey[:, :-1], atol=1e-6)

# %% [markdown]
# ## Fewer multiplications: Winograd's minimal filtering
#
# The matrix view says *what* a convolution computes, not how cheaply. A 3x3 kernel on a
# 4x4 tile gives 2x2 outputs for $2 \cdot 2 \cdot 9 = 36$ multiplications. Winograd's
# $F(2\times2, 3\times3)$ (Lavin and Gray, 2016) gets the same 2x2 outputs from 16:
#
# $$ Y = A^T \left[ (G\, g\, G^T) \odot (B^T d\, B) \right] A , $$
#
# where $B^T d B$ and $A^T (\cdot) A$ need only additions and $G g G^T$ depends on the kernel
# alone (computed once per layer, not per tile). Summed over input channels the 16
# elementwise products become 16 matrix products, so a 3x3 layer does 4 instead of 9
# multiply-adds per output and channel pair. The library's Numba backend uses exactly these
# matrices (`tinygrad_cnn.kernels.numba.conv.winograd`) for 3x3 stride-1 layers with at least 32
# channels; its docstring derives the gradients too.

# %%
from tinygrad_cnn.kernels import use_backend
from tinygrad_cnn.kernels.numba.conv.winograd import A_T, B_T, G

tile = rng.standard_normal((4, 4))
g = rng.standard_normal((3, 3))
Y = A_T @ ((G @ g @ G.T) * (B_T @ tile @ B_T.T)) @ A_T.T
Y_direct = F.conv2d(Tensor(tile[None, None]), Tensor(g[None, None])).numpy()[0, 0]
print("Winograd 2x2 outputs:\n", Y.round(4), "\ndirect:\n", Y_direct.round(4))
np.testing.assert_allclose(Y, Y_direct, atol=1e-12)
multiplications_direct, multiplications_winograd = Y.size * g.size, (G @ g @ G.T).size
print(f"multiplications per tile: direct {multiplications_direct}, Winograd {multiplications_winograd}")
assert (multiplications_direct, multiplications_winograd) == (36, 16)

# A whole layer: 32 channels, 3x3, padding 1. `choose` says which algorithm the Numba
# backend picks for its geometry (Winograd); the reference backend runs the textbook sum
# over kernel taps. Float32 results agree to rounding.
from tinygrad_cnn.kernels.numba.conv import choose

from tinygrad_cnn.nn.functional.geometry import conv_geometry

images = Tensor(rng.standard_normal((4, 32, 8, 8)).astype(np.float32))
filters = Tensor((rng.standard_normal((32, 32, 3, 3)) * 0.1).astype(np.float32))
chosen = choose(conv_geometry("conv2d", 2, images.shape, filters.shape, None, 1, 1, 1, 1))
print(f"the Numba backend runs this layer with: {chosen}")
assert chosen.strategy == "winograd"
with use_backend("numba"):
    fast = F.conv2d(images, filters, padding=1).numpy()
with use_backend("reference"):
    textbook = F.conv2d(images, filters, padding=1).numpy()
print(f"largest difference over {fast.size:,} outputs: {np.abs(fast - textbook).max():.2e}")
np.testing.assert_allclose(fast, textbook, rtol=1e-4, atol=1e-4)

# %% [markdown]
# ## Pictures
#
# `06_toeplitz.png`: the matrices $M$ (4x16 and 9x25, the 3x5 grid of blocks outlined) and
# $M^T$. `06_edge_detector.png`: the photograph and its $[-1, 1]$ response.

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from tinygrad_cnn import viz

# one scale for all three: a square is one entry of the matrix, whatever its size
fig, axes = plt.subplots(1, 3, figsize=(16, 8.6), layout="constrained",
                         gridspec_kw={"width_ratios": [16, 25, 9]})
panels = [
    (axes[0], M, "M for a 4x4 input (4x16)", "input pixel (16 = 4x4)", "output pixel (4 = 2x2)"),
    (axes[1], M5, "M for a 5x5 input (9x25):\na 3x5 grid of Toeplitz blocks", "input pixel (25 = 5x5)",
     "output pixel (9 = 3x3)"),
    (axes[2], M5.T, "Mᵀ (25x9): the transposed\nconvolution (and the input gradient)", "output pixel (9)",
     "input pixel (25)"),
]
for ax, matrix, title, xlabel, ylabel in panels:
    image = ax.imshow(np.where(matrix != 0, matrix, np.nan), cmap="viridis", vmin=1, vmax=9)
    ax.set_facecolor("whitesmoke")
    viz.annotate_cells(ax, image, matrix, fmt="{:.0f}".format, fontsize=7, skip_zeros=True)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_anchor("N")  # top-aligned: the sizes compare at a glance
for boundary in range(1, H):
    axes[1].axvline(boundary * 5 - 0.5, color="k", lw=0.8)
    axes[2].axhline(boundary * 5 - 0.5, color="k", lw=0.8)
for boundary in range(1, 3):
    axes[1].axhline(boundary * 3 - 0.5, color="k", lw=0.8)
    axes[2].axvline(boundary * 3 - 0.5, color="k", lw=0.8)
for boundary in range(1, 4):
    axes[0].axvline(boundary * 4 - 0.5, color="k", lw=0.8)
axes[0].axhline(1.5, color="k", lw=0.8)
fig.suptitle(
    "conv2d as a matrix: one square = one entry, the same size in all three; the number is the kernel "
    "weight (1-9) it holds, grey entries are 0",
    fontsize=11,
)
fig.savefig(OUT / "06_toeplitz.png", dpi=90)
plt.close(fig)

fig, axes = plt.subplots(1, 2, figsize=(12, 5), layout="constrained")
axes[0].imshow(grey, cmap="gray")
axes[0].set_title(f"{rows}x{cols} input")
bound = np.percentile(np.abs(edges), 99)
response = axes[1].imshow(edges, cmap="RdBu_r", vmin=-bound, vmax=bound)
axes[1].set_title(
    f"kernel [-1, 1]: {rows}x{cols - 1} outputs, {ops:,} operations\n"
    f"(a dense matrix would have {dense_entries:.1e} entries)"
)
for ax in axes:
    ax.axis("off")
bar = fig.colorbar(response, ax=axes[1], shrink=0.8)
bar.set_label("right pixel minus left pixel\n(red: brighter to the right, blue: darker, white: no edge)")
fig.savefig(OUT / "06_edge_detector.png", dpi=90)
plt.close(fig)
print("saved", OUT / "06_toeplitz.png", OUT / "06_edge_detector.png")
