# %% [markdown]
# # 7. Pooling, invariance and equivariance
#
# A convolutional stage has three steps: convolution, a non-linearity (the *detector*), and
# **pooling**, which replaces each window of a feature map by one summary number:
#
# * **max pooling**: $\max_{(m, n) \in \text{window}} x(m, n)$, "is the feature present here?";
# * **average pooling**: the mean of the window;
# * **L2-norm pooling**: $\sqrt{\sum_{\text{window}} x^2}$ (`F.lp_pool2d` with $p = 2$).
#
# With stride > 1 pooling also downsamples. Its purpose is **invariance to small
# translations**: if the input moves by a pixel, most pooled values stay the same.
# Convolution itself is not invariant but **equivariant** to translations:
# $\mathrm{conv}(\mathrm{shift}(x)) = \mathrm{shift}(\mathrm{conv}(x))$: a shifted input
# gives the same feature map, shifted.

# %%
import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_sample_image

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor, filters, nn

parser = argparse.ArgumentParser(description="Tutorial 7: pooling")
parser.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
parser.add_argument("--out", default=None, help="folder for the pictures (default: tutorials/out)")
# As a script an unknown flag (a typo such as --output for --out) is an error; in a notebook
# the Jupyter kernel's own flags (-f kernel-<id>.json) are in sys.argv: parse_known_args skips them.
args = parser.parse_known_args()[0] if "ipykernel" in sys.modules else parser.parse_args()
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(args.out) if args.out else HERE / "out"
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Max, average and L2 pooling by hand
#
# The classic 4x4 example with 2x2 windows and stride 2.

# %%
x = Tensor(np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]], dtype=np.float32)[None, None])
pooled = {
    "max": F.max_pool2d(x, 2).numpy()[0, 0],
    "average": F.avg_pool2d(x, 2).numpy()[0, 0],
    "L2": F.lp_pool2d(x, 2, 2).numpy()[0, 0],
}
print("input:\n", x.numpy()[0, 0])
for name, values in pooled.items():
    print(f"{name} pooling 2x2, stride 2:\n", np.round(values, 3))
np.testing.assert_array_equal(pooled["max"], [[6, 8], [3, 4]])
np.testing.assert_allclose(pooled["average"], [[3.25, 5.25], [2, 2]])
np.testing.assert_allclose(pooled["L2"], [[np.sqrt(63), np.sqrt(133)], [np.sqrt(18), np.sqrt(26)]], rtol=1e-5)
assert np.all(pooled["average"] <= pooled["max"]) and np.all(pooled["max"] <= pooled["L2"]), (
    "for non-negative inputs: average <= max <= L2 norm"
)
assert nn.MaxPool2d(2)(x).shape == (1, 1, 2, 2), "the layer versions do the same"

# %% [markdown]
# ## Invariance in one dimension (Goodfellow, Bengio and Courville, figure 9.8)
#
# Detector outputs $[0.1, 1, 0.2, 0.1]$, max pooling over windows of 3 with stride 1. Shift the
# input right by one pixel (a new value 0.3 enters on the left): **every** detector value
# changes, but only **half** of the pooled values do, because a max only cares that the large
# value is somewhere in its window.

# %%
detector = Tensor(np.array([[[0.1, 1.0, 0.2, 0.1]]], dtype=np.float32))
shifted = Tensor(np.array([[[0.3, 0.1, 1.0, 0.2]]], dtype=np.float32))
pool_a = F.max_pool1d(detector, 3, stride=1, padding=1).numpy().ravel()
pool_b = F.max_pool1d(shifted, 3, stride=1, padding=1).numpy().ravel()
changed_detector = int((detector.numpy() != shifted.numpy()).sum())
changed_pooled = int((pool_a != pool_b).sum())
print(f"detector {detector.numpy().ravel()} -> pooled {pool_a}")
print(f"shifted  {shifted.numpy().ravel()} -> pooled {pool_b}")
print(f"changed: {changed_detector}/4 detector values, {changed_pooled}/4 pooled values")
np.testing.assert_allclose(pool_a, [1, 1, 1, 0.2])
np.testing.assert_allclose(pool_b, [0.3, 1, 1, 1])
assert changed_detector == 4 and changed_pooled == 2

# %% [markdown]
# ## Equivariance of convolution, invariance of pooling, on a photograph
#
# A bank of edge detectors (the eight Kirsch kernels) and a ReLU turn a grey photograph into
# eight feature maps. We shift the photograph by one pixel and compare.
#
# * **Equivariance**: the feature maps of the shifted photograph equal the shifted feature maps
#   (exactly, away from the border).
# * **Invariance**: compare feature maps at the *same* positions before and after the shift.
#   The detector maps change a lot (edges are thin: a one-pixel move misses most of them);
#   after max pooling over $k \times k$ windows the change shrinks as $k$ grows, and max
#   pooling beats average pooling.
# * Pooling with stride $s$ keeps an equivariance at the coarser scale: a shift by $s$ pixels
#   shifts the pooled map by exactly one position.

# %%
rgb = load_sample_image("china.jpg")
width = 128 if args.quick else 320
height = round(rgb.shape[0] * width / rgb.shape[1]) // 8 * 8
grey = (
    np.asarray(
        Image.fromarray(rgb).convert("L").resize((width, height), Image.Resampling.LANCZOS), dtype=np.float32
    )
    / 255
)
bank = Tensor(filters.kirsch_all()[:, None])  # (8, 1, 3, 3)


def features(image: np.ndarray) -> Tensor:
    """Convolution (valid) + ReLU: the detector stage, (1, 8, H - 2, W - 2)."""
    return F.relu(F.conv2d(Tensor(image[None, None]), bank))


base = features(grey)
moved = features(np.roll(grey, 1, axis=1))  # shift right by one pixel
shift_back = np.roll(moved.numpy(), -1, axis=3)
np.testing.assert_allclose(
    shift_back[..., 1:-1],
    base.numpy()[..., 1:-1],
    atol=1e-5,
    err_msg="convolution is translation equivariant",
)
print("equivariance: features(shift(x)) == shift(features(x)) away from the border: checked")


def relative_change(a: Tensor, b: Tensor) -> float:
    """|a - b| / |a| at the same positions, leaving out the border columns the shift wraps."""
    a, b = a.numpy()[..., 2:-2], b.numpy()[..., 2:-2]
    return float(np.abs(a - b).sum() / np.abs(a).sum())


sizes = [2, 4, 8]
change = {"detector": relative_change(base, moved)}
for k in sizes:
    change[f"max {k}x{k}"] = relative_change(
        F.max_pool2d(base, k, stride=1), F.max_pool2d(moved, k, stride=1)
    )
    change[f"avg {k}x{k}"] = relative_change(
        F.avg_pool2d(base, k, stride=1), F.avg_pool2d(moved, k, stride=1)
    )
for name, value in change.items():
    print(f"  relative change after a 1-pixel shift, {name:9s}: {value:.3f}")
assert change["max 2x2"] < change["detector"], "max pooling makes the features more shift-invariant"
assert change["max 8x8"] < change["max 4x4"] < change["max 2x2"], "larger windows: more invariance"
for k in sizes:
    assert change[f"max {k}x{k}"] < change[f"avg {k}x{k}"], "max pooling is more invariant than averaging"

# stride-2 pooling: a shift by 2 pixels moves the pooled map by one position
moved2 = features(np.roll(grey, 2, axis=1))
p0 = F.max_pool2d(base, 2).numpy()
p2 = F.max_pool2d(moved2, 2).numpy()
np.testing.assert_allclose(
    np.roll(p2, -1, axis=3)[..., 1:-1],
    p0[..., 1:-1],
    atol=1e-5,
    err_msg="max_pool2d(stride 2) is equivariant to shifts by 2",
)
print("stride-2 max pooling: a shift by 2 pixels shifts the pooled map by 1: checked")

# %% [markdown]
# ## Global pooling: any input size, one number per map
#
# `F.adaptive_avg_pool2d(x, 1)` averages each whole map, whatever its size; networks such as
# ResNet end with it so that the classifier sees a fixed-length vector.

# %%
for side in (16, 23):
    out = F.adaptive_avg_pool2d(Tensor.ones(2, 8, side, side), 1)
    assert out.shape == (2, 8, 1, 1)
print("adaptive_avg_pool2d(x, 1): (2, 8, 16, 16) and (2, 8, 23, 23) both -> (2, 8, 1, 1)")

# %% [markdown]
# ## Pictures
#
# `07_pooling.png`: one feature map (Kirsch "E", vertical edges) and its max, average and L2
# pooling over 4x4 windows. `07_invariance.png`: how much the features change after a
# one-pixel shift, before and after pooling.

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

east = base[:, 6:7]  # Kirsch "E"
maps = [
    ("photograph", grey),
    ("detector: Kirsch E + ReLU", east.numpy()[0, 0]),
    ("max pool 4x4", F.max_pool2d(east, 4).numpy()[0, 0]),
    ("average pool 4x4", F.avg_pool2d(east, 4).numpy()[0, 0]),
    ("L2 pool 4x4", F.lp_pool2d(east, 2, 4).numpy()[0, 0]),
]
fig, axes = plt.subplots(1, 5, figsize=(18, 3.2))
for ax, (title, image) in zip(axes, maps):
    ax.imshow(image, cmap="gray" if title == "photograph" else "magma", interpolation="nearest")
    ax.set_title(f"{title}\n{image.shape[0]}x{image.shape[1]}", fontsize=10)
    ax.axis("off")
fig.tight_layout()
fig.savefig(OUT / "07_pooling.png", dpi=80)
plt.close(fig)

fig, axes = plt.subplots(1, 2, figsize=(13, 4))
ax = axes[0]
rows = [
    ("pooled", pool_a, pool_a != pool_b, 3.2),
    ("detector", detector.numpy().ravel(), None, 2.4),
    ("pooled, shifted input", pool_b, pool_a != pool_b, 1.0),
    ("detector, shifted input", shifted.numpy().ravel(), np.ones(4, bool), 0.2),
]
for name, values, changed, height_ in rows:
    ax.text(-0.6, height_, name, ha="right", va="center", fontsize=9)
    for i, v in enumerate(values):
        colour = "mistyrose" if changed is not None and changed[i] else "white"
        ax.text(
            i,
            height_,
            f"{v:.1f}",
            ha="center",
            va="center",
            fontsize=11,
            bbox=dict(boxstyle="round", fc=colour, ec="grey"),
        )
ax.set_xlim(-3.2, 3.6)
ax.set_ylim(-0.3, 3.7)
ax.axis("off")
ax.set_title(
    f"1-D max pooling (width 3): a shift changes {changed_detector}/4 detector values,\n"
    f"{changed_pooled}/4 pooled values (changed values shaded)",
    fontsize=10,
)
labels = ["detector"] + [f"{k}x{k}" for k in sizes]
axes[1].plot(
    labels, [change["detector"]] + [change[f"max {k}x{k}"] for k in sizes], "o-", label="max pooling"
)
axes[1].plot(
    labels, [change["detector"]] + [change[f"avg {k}x{k}"] for k in sizes], "s-", label="average pooling"
)
axes[1].set_ylabel("relative change after a 1-pixel shift")
axes[1].set_xlabel("features compared: the detector map, then pooled with a k x k window (stride k)")
axes[1].set_title("photograph: pooling makes features shift-invariant")
axes[1].set_ylim(0, None)
axes[1].legend()
fig.tight_layout()
fig.savefig(OUT / "07_invariance.png", dpi=90)
plt.close(fig)
print("saved", OUT / "07_pooling.png", OUT / "07_invariance.png")
