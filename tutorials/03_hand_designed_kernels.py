# %% [markdown]
# # 3. Hand-designed kernels on a photograph
#
# Before kernels were learned, image processing designed them by hand. Each one is a small
# grid of weights $K$, and filtering is the cross-correlation
# $S(i, j) = \sum_m \sum_n I(i + m, j + n)\, K(m, n)$ (`F.conv2d`, `F.correlate2d`).
# `tinygrad_cnn.filters` provides the classics:
#
# * **box blur** (mean filter) 3x3 and 9x9: all weights $1/k^2$, they sum to 1, so flat regions
#   keep their brightness; the larger the box, the stronger the blur;
# * **sharpen** (unsharp masking): $I + a\,(I - \mathrm{blur}(I))$, i.e. the kernel
#   $(1 + a)\,\delta - a\,\mathrm{box}$, which adds back $a$ times the detail the blur removed;
# * **Sobel**, **Prewitt** (3x3) and **Roberts** (2x2) derivative kernels: a difference in one
#   direction, smoothing in the other; they respond to edges across that direction;
# * the eight **Kirsch** compass kernels, one per direction (N, NW, ..., NE);
# * the **Laplacian** $\partial^2/\partial x^2 + \partial^2/\partial y^2$: its weights sum to 0,
#   flat regions give 0 and edges a zero crossing;
# * **gradient magnitude and direction** from two derivative images,
#   $|\nabla I| = \sqrt{g_x^2 + g_y^2}$, $\theta = \mathrm{atan2}(g_y, g_x)$.
#
# The photograph is one of scikit-learn's bundled sample images (`china.jpg`, offline),
# turned grey and downscaled so that everything runs in a second.

# %%
import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_sample_image

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor, filters, viz

parser = argparse.ArgumentParser(description="Tutorial 3: hand-designed kernels")
parser.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
parser.add_argument("--out", default=None, help="folder for the pictures (default: tutorials/out)")
# As a script an unknown flag (a typo such as --output for --out) is an error; in a notebook
# the Jupyter kernel's own flags (-f kernel-<id>.json) are in sys.argv: parse_known_args skips them.
args = parser.parse_known_args()[0] if "ipykernel" in sys.modules else parser.parse_args()
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(args.out) if args.out else HERE / "out"
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The photograph
#
# Grey value = the usual luminance mix $0.299 R + 0.587 G + 0.114 B$, scaled to [0, 1].

# %%
rgb = load_sample_image("china.jpg")  # (427, 640, 3) uint8
width = 160 if args.quick else 320
height = round(rgb.shape[0] * width / rgb.shape[1])
small = np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.LANCZOS), dtype=np.float32)
grey = (small @ np.array([0.299, 0.587, 0.114], dtype=np.float32)) / 255.0
print(f"photograph: {rgb.shape} -> grey {grey.shape}, values in [{grey.min():.2f}, {grey.max():.2f}]")


def filt(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Cross-correlate an (H, W) image with a kernel; 'same' keeps the size of the image."""
    return F.correlate2d(Tensor(image), Tensor(kernel), mode="same").numpy()


# %% [markdown]
# ## Blurring and sharpening
#
# Kernels whose weights sum to 1 keep the average brightness. Blur removes detail; we measure
# detail by the mean absolute difference between neighbouring pixels (the *total variation*).


# %%
def detail(image: np.ndarray) -> float:
    return float(np.abs(np.diff(image, axis=1)).mean() + np.abs(np.diff(image, axis=0)).mean())


box3, box9 = filt(grey, filters.box_blur(3)), filt(grey, filters.box_blur(9))
sharp = filt(grey, filters.sharpen(amount=1.5))
inner = (slice(8, -8), slice(8, -8))  # away from the zero padding at the border
for name, im in [("original", grey), ("box 3x3", box3), ("box 9x9", box9), ("sharpen a=1.5", sharp)]:
    print(f"{name:14s} mean {im[inner].mean():.4f}  detail {detail(im[inner]):.4f}")
for name, k in [
    ("box 3x3", filters.box_blur(3)),
    ("box 9x9", filters.box_blur(9)),
    ("sharpen", filters.sharpen(1.5)),
]:
    assert abs(k.sum() - 1) < 1e-5, f"{name} weights should sum to 1, got {k.sum()}"
print("sharpen(1.5) kernel:\n", filters.sharpen(1.5))
assert abs(box9[inner].mean() - grey[inner].mean()) < 0.01, "blur keeps the mean brightness"
assert detail(box9[inner]) < detail(box3[inner]) < detail(grey[inner]) < detail(sharp[inner]), (
    "a 9x9 box blurs more than a 3x3 box, and sharpening adds detail"
)

# %% [markdown]
# ## Edge detectors
#
# Sobel $x$ is $[1, 2, 1]^T [-1, 0, 1]$: a central difference across (left to right) and a
# smoothing along (top to bottom). It responds to *vertical* edges, where intensity changes
# from left to right. We check the orientation on a synthetic step image first.

# %%
print(
    "sobel x:\n",
    filters.sobel("x"),
    "\nprewitt x:\n",
    filters.prewitt("x"),
    "\nroberts x:\n",
    filters.roberts("x"),
    "\nlaplacian:\n",
    filters.laplacian(),
)
step = np.zeros((9, 9), dtype=np.float32)
step[:, 5:] = 1.0  # dark on the left, bright on the right: a vertical edge
gx_step = F.correlate2d(Tensor(step), Tensor(filters.sobel("x")), mode="valid").numpy()
gy_step = F.correlate2d(Tensor(step), Tensor(filters.sobel("y")), mode="valid").numpy()
print("sobel x on a vertical step, one row:", gx_step[3])
assert gx_step.max() == 4 and np.all(gy_step == 0), "Sobel x sees the vertical edge (1+2+1 = 4), Sobel y not"
lap_step = F.correlate2d(Tensor(step), Tensor(filters.laplacian()), mode="valid").numpy()
print("laplacian on the step, one row:     ", lap_step[3], "(a zero crossing at the edge)")
assert lap_step[3, 3] == 1 and lap_step[3, 4] == -1 and np.all(lap_step[:, :3] == 0)

sobel_x, sobel_y = filt(grey, filters.sobel("x")), filt(grey, filters.sobel("y"))
prewitt_x, prewitt_y = filt(grey, filters.prewitt("x")), filt(grey, filters.prewitt("y"))
roberts_x, roberts_y = filt(grey, filters.roberts("x")), filt(grey, filters.roberts("y"))
lap = filt(grey, filters.laplacian())
magnitude, direction = filters.gradient_magnitude_direction(sobel_x, sobel_y)
np.testing.assert_allclose(magnitude, np.sqrt(sobel_x**2 + sobel_y**2), rtol=1e-5)
for name, k in [
    ("sobel", filters.sobel()),
    ("prewitt", filters.prewitt()),
    ("roberts", filters.roberts()),
    ("laplacian", filters.laplacian()),
]:
    assert k.sum() == 0, f"a derivative kernel sums to 0 (flat regions give 0): {name}"
print(
    f"Sobel gradient magnitude: mean {magnitude[inner].mean():.3f}, max {magnitude[inner].max():.3f}; "
    f"Laplacian mean |response| {np.abs(lap[inner]).mean():.3f}"
)

# %% [markdown]
# ## Kirsch compass kernels: a bank of filters is a convolution layer
#
# The eight Kirsch kernels are rotations of one another (5 on the three cells facing one
# direction, -3 elsewhere). Stacked as a weight of shape (8, 1, 3, 3) they form **one**
# `conv2d` layer with eight output channels: exactly the shape of the first layer of a CNN,
# except that a CNN learns its kernels. The per-pixel maximum over the eight responses is an
# edge strength, and its argmax the edge direction.

# %%
kirsch = filters.kirsch_all()  # (8, 3, 3), in filters.KIRSCH_DIRECTIONS order
responses = F.conv2d(Tensor(grey[None, None]), Tensor(kirsch[:, None]), padding="same").numpy()[0]
print("Kirsch bank: weight", kirsch[:, None].shape, "-> responses", responses.shape)
for d, r in zip(filters.KIRSCH_DIRECTIONS, responses):
    assert np.allclose(r, filt(grey, filters.kirsch(d)), atol=1e-4), "one layer == eight separate filters"
kirsch_edges = responses.max(axis=0)
north = filters.KIRSCH_DIRECTIONS.index("N")
horizontal_edge = np.zeros((7, 7), dtype=np.float32)
horizontal_edge[:3] = 1.0  # bright on top: the North kernel responds most
best = F.conv2d(Tensor(horizontal_edge[None, None]), Tensor(kirsch[:, None])).numpy()[0, :, 2, 2].argmax()
assert best == north, (
    f"the North kernel should win on a bright-top edge, got {filters.KIRSCH_DIRECTIONS[best]}"
)
corr = np.corrcoef(kirsch_edges[inner].ravel(), magnitude[inner].ravel())[0, 1]
print(f"Kirsch max response vs Sobel magnitude: correlation {corr:.3f}")
assert corr > 0.9, "the two edge detectors agree on where the edges are"

# %% [markdown]
# ## Pictures
#
# `03_kernels.png`: the kernels themselves, each weight written on its cell (blue negative, red
# positive).
# `03_filtered.png`: the photograph through each kernel. `03_kirsch.png`: the eight compass
# responses.

# %%
bank = [
    ("box 3x3", filters.box_blur(3)),
    ("sharpen 1.5", filters.sharpen(1.5)),
    ("sobel x", filters.sobel("x")),
    ("sobel y", filters.sobel("y")),
    ("prewitt x", filters.prewitt("x")),
    ("laplacian", filters.laplacian()),
    *[(f"kirsch {d}", filters.kirsch(d)) for d in ("N", "E")],
]
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

# each kernel with its weights written on its cells (red > 0, blue < 0, white 0; each kernel on its
# own scale, so that the small weights of a blur stay visible)
fig, axes = plt.subplots(1, len(bank), figsize=(2.0 * len(bank), 2.6), layout="constrained")
for ax, (name, kernel) in zip(axes, bank):
    bound = np.abs(kernel).max()
    image = ax.imshow(kernel, cmap="bwr", vmin=-bound, vmax=bound)
    viz.annotate_cells(ax, image, kernel, fmt=lambda v: f"{v:.2g}", fontsize=8)
    ax.set_title(name, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("the kernels: the weight on each cell; red positive, blue negative, white 0", fontsize=11)
fig.savefig(OUT / "03_kernels.png", dpi=80)
plt.close(fig)

panels = [
    ("original", grey, "gray"),
    ("box blur 3x3", box3, "gray"),
    ("box blur 9x9", box9, "gray"),
    ("sharpen, amount 1.5", np.clip(sharp, 0, 1), "gray"),
    ("Sobel x", sobel_x, "RdBu_r"),
    ("Sobel y", sobel_y, "RdBu_r"),
    ("Prewitt x", prewitt_x, "RdBu_r"),
    ("Roberts x", roberts_x, "RdBu_r"),
    ("Laplacian", lap, "RdBu_r"),
    ("gradient magnitude (Sobel)", magnitude, "magma"),
    ("gradient direction", direction, "hsv"),
    ("Kirsch max over 8 directions", kirsch_edges, "magma"),
]
fig, axes = plt.subplots(3, 4, figsize=(17, 3 * 16 / 4 * height / width + 1.6), layout="constrained")
for ax, (title, im, cmap) in zip(axes.ravel(), panels):
    if cmap == "RdBu_r":  # signed responses: white = 0
        bound = np.percentile(np.abs(im), 99)
        shown = ax.imshow(im, cmap=cmap, vmin=-bound, vmax=bound)
        label = "response\n(red > 0 > blue)"
    elif cmap == "hsv":  # direction only where there is an edge
        shown = ax.imshow(
            np.degrees(np.where(magnitude > np.percentile(magnitude, 75), im, np.nan)),
            cmap=cmap,
            vmin=-180,
            vmax=180,
            interpolation="nearest",
        )
        ax.set_facecolor("black")
        label = "edge direction (degrees)\nblack: no strong edge"
    else:
        grey_range = dict(vmin=0, vmax=1) if cmap == "gray" else {}
        shown = ax.imshow(im, cmap=cmap, **grey_range)
        label = "brightness" if cmap == "gray" else "edge strength"
    if title != "original" and cmap != "gray":
        bar = fig.colorbar(shown, ax=ax, fraction=0.04, pad=0.01)
        bar.set_label(label, fontsize=7)
        bar.ax.tick_params(labelsize=6)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
fig.savefig(OUT / "03_filtered.png", dpi=80)
plt.close(fig)

fig, axes = plt.subplots(2, 4, figsize=(16, 2 * 16 / 4 * height / width + 0.8))
for ax, d, r in zip(axes.ravel(), filters.KIRSCH_DIRECTIONS, responses):
    ax.imshow(np.maximum(r, 0), cmap="magma")
    ax.set_title(f"Kirsch {d}")
    ax.axis("off")
fig.tight_layout()
fig.savefig(OUT / "03_kirsch.png", dpi=80)
plt.close(fig)
print("saved", OUT / "03_kernels.png", OUT / "03_filtered.png", OUT / "03_kirsch.png")
