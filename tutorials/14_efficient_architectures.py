# %% [markdown]
# # 14. Efficient architectures: depthwise separable, inverted residuals, binarized
#
# A 3x3 convolution from C to C' channels costs $9\,C\,C'$ weights and as many multiply-adds per
# output pixel. The small and fast networks of the course all cut that product:
#
# * **depthwise separable convolution** (MobileNet, Xception): a 3x3 *depthwise* convolution
#   filters each channel alone ($9\,C$), then a 1x1 *pointwise* convolution mixes the channels
#   ($C\,C'$): $9C + CC'$ instead of $9CC'$, about 8 times less for 3x3 kernels;
# * **inverted residual with linear bottleneck** (MobileNetV2): thin tensors between blocks;
#   inside a block a 1x1 convolution expands to $tC$ channels, a depthwise 3x3 filters them, a
#   1x1 convolution projects back without a ReLU, and the block's input is added when shapes
#   match;
# * **Inception and Xception** (GoogLeNet): parallel branches with cheap 1x1 reductions in front
#   of the expensive kernels, and, in Xception, separable convolutions everywhere;
# * **binarization**: one bit per weight and activation (tutorial 13).
#
# We build four networks of the same shape for the digits (16x16; 8x8 and half the channels
# with `--quick`): a plain stack of 3x3
# convolutions, the same with depthwise-separable convolutions, a small MobileNetV2, and a
# binarized version of the plain one, and compare their parameters, FLOPs (from `summary`),
# accuracy and time per training step. The full-size members of the model zoo close the tutorial.

# %%
import argparse
import sys
import time
from pathlib import Path

import numpy as np

import tinygrad_cnn
import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor, data, models, nn, optim, training
from tinygrad_cnn.summary import summary

parser = argparse.ArgumentParser(description="Tutorial 14: efficient architectures")
parser.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
parser.add_argument("--out", default=None, help="folder for the pictures (default: tutorials/out)")
# the Jupyter kernel's own flags (-f kernel-<id>.json) are in sys.argv: parse_known_args skips them.
args = parser.parse_known_args()[0] if "ipykernel" in sys.modules else parser.parse_args()
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(args.out) if args.out else HERE / "out"
OUT.mkdir(parents=True, exist_ok=True)
tinygrad_cnn.manual_seed(0)

# %% [markdown]
# ## One layer, counted by hand
#
# 64 -> 128 channels, 3x3: a full convolution against its depthwise-separable version.

# %%
full = nn.Conv2d(64, 128, 3, padding=1, bias=False)
separable = nn.SeparableConv2d(64, 128, 3, padding=1, bias=False)
n_full = sum(p.numel() for p in full.parameters())
n_separable = sum(p.numel() for p in separable.parameters())
print(f"full 3x3: {n_full:,} weights; depthwise 3x3 + pointwise 1x1: {n_separable:,} "
      f"({n_full / n_separable:.1f}x fewer)")
assert n_full == 9 * 64 * 128 and n_separable == 9 * 64 + 64 * 128
x = Tensor(np.random.default_rng(0).random((1, 64, 8, 8)).astype(np.float32))
assert separable(x).shape == full(x).shape == (1, 128, 8, 8)

# %% [markdown]
# ## Four networks for 16x16 digits
#
# Same depth and widths (32, 64, 64, 128 channels; two stride-2 layers; global average pooling;
# a dense layer to 10 classes):
#
# * **plain**: 3x3 convolution, batch norm, ReLU, four times;
# * **separable**: the first convolution kept (one input channel: nothing to separate), the other
#   three replaced by MobileNet's depthwise-separable block (`models.DepthwiseSeparable`);
# * **MobileNetV2**: `models.MobileNetV2` with a short stage list (inverted residuals with
#   expansion 6, the stride-2 blocks where the plain network has them), 128 maps before pooling;
# * **binarized**: the plain network with `nn.BinarizedConv2d` layers (+-1 weights; the inputs of
#   all but the first are binarized too, sign of the batch norm's output) and a real dense layer.

# %%
SIZE = 8 if args.quick else 16
WIDTHS = [(1, 32, 1), (32, 64, 2), (64, 64, 1), (64, 128, 2)]  # (in, out, stride)
if args.quick:
    WIDTHS = [(max(1, c // 2), o // 2, s) for c, o, s in WIDTHS]
LAST = WIDTHS[-1][1]


def plain_net() -> nn.Sequential:
    layers: list[nn.Module] = []
    for c_in, c_out, stride in WIDTHS:
        layers += [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                   nn.ReLU()]
    return nn.Sequential(*layers, nn.GlobalAvgPool2d(flatten=True), nn.Linear(LAST, 10))


def separable_net() -> nn.Sequential:
    (c_in, c_out, stride), rest = WIDTHS[0], WIDTHS[1:]
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                               nn.BatchNorm2d(c_out), nn.ReLU()]
    layers += [models.DepthwiseSeparable(c_in, c_out, stride) for c_in, c_out, stride in rest]
    return nn.Sequential(*layers, nn.GlobalAvgPool2d(flatten=True), nn.Linear(LAST, 10))


def mobilenet_v2_net() -> models.MobileNetV2:
    setting = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 2, 2]]  # t, c, n, s
    width = 0.5 if args.quick else 1.0
    return models.MobileNetV2(10, width, setting, in_channels=1, stem_stride=1, last_channel=LAST,
                              dropout=0.0)


def binarized_net() -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (c_in, c_out, stride) in enumerate(WIDTHS):
        layers += [nn.BinarizedConv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False,
                                      binarize_input=i > 0), nn.BatchNorm2d(c_out)]
    return nn.Sequential(*layers, nn.GlobalAvgPool2d(flatten=True), nn.Linear(LAST, 10))


BUILDERS = {"plain": plain_net, "separable": separable_net, "MobileNetV2": mobilenet_v2_net,
            "binarized": binarized_net}
tables = {name: summary(build(), (1, SIZE, SIZE), print_summary=False) for name, build in BUILDERS.items()}
if not args.quick:
    print(tables["separable"])
params = {name: t.total_params for name, t in tables.items()}
flops = {name: t.total_flops for name, t in tables.items()}
# the separable blocks by hand: depthwise 9C + BN 2C, pointwise C C' + BN 2C'
blocks = sum(9 * c + 2 * c + c * o + 2 * o for c, o, _ in WIDTHS[1:])
first = WIDTHS[0][1]
assert params["separable"] == (9 * first + 2 * first) + blocks + (LAST * 10 + 10)
assert params["plain"] == sum(9 * c * o + 2 * o for c, o, _ in WIDTHS) + LAST * 10 + 10
assert params["binarized"] == params["plain"], "the same weights, used as signs"
assert params["separable"] < params["plain"] / 5 and flops["separable"] < flops["plain"] / 4

# %% [markdown]
# ## Training
#
# The 8x8 digits upsampled to 16x16, Adam, the same epochs for all four. Time per step is
# measured on one batch of 32 after a warm-up (it depends on the machine and its load: compare
# the ratios). FLOPs do not translate one-to-one into time: a depthwise convolution has little
# arithmetic per byte it reads, so it runs below the speed of a large dense convolution, and a
# binarized network only becomes fast with bit-packed XNOR-popcount kernels (here its signs are
# computed with float arithmetic, to train it). Likewise `summary` counts the binarized network's
# multiply-adds as FLOPs; with bits they are XNORs and popcounts, 64 to a machine word.

# %%
x_train, y_train, x_test, y_test = data.load_digits(image_size=SIZE)
if args.quick:
    x_train, y_train, x_test, y_test = x_train[:300], y_train[:300], x_test[:200], y_test[:200]
epochs = 2 if args.quick else 6


def step_ms(model, repeats: int) -> float:
    batch, target = Tensor(x_train[:32]), Tensor(y_train[:32])
    optimizer = optim.SGD(model.parameters(), lr=0.0)  # the work of a step, without changing the model
    model.train()
    for i in range(repeats + 1):
        if i == 1:
            start = time.perf_counter()  # after the warm-up step
        optimizer.zero_grad()
        F.cross_entropy(model(batch), target).backward()
        optimizer.step()
    return (time.perf_counter() - start) / repeats * 1e3


accuracy, milliseconds, sizes, losses = {}, {}, {}, {}
for name, build in BUILDERS.items():
    tinygrad_cnn.manual_seed(1)
    model = build()
    lr = 1e-2 if name == "binarized" else 3e-3
    trainer = training.Trainer(model, optim.Adam(model.parameters(), lr=lr), batch_size=32, seed=0,
                               progress=False)
    losses[name] = trainer.fit((x_train, y_train), epochs=epochs)["loss"]
    accuracy[name] = float((trainer.predict(x_test).argmax(axis=1) == y_test).mean())
    milliseconds[name] = step_ms(model, 2 if args.quick else 10)
    sizes[name] = nn.binarized_size_bytes(model) if name == "binarized" else \
        sum(t.data.nbytes for t in [*model.parameters(), *(b for _, b in model.named_buffers())])

print(f"\n{'network':12s} {'parameters':>10s} {'MFLOPs':>8s} {'bytes':>9s} {'accuracy':>9s} {'ms/step':>8s}")
for name in BUILDERS:
    row = f"{name:12s} {params[name]:>10,} {flops[name] / 1e6:>8.2f} {sizes[name]:>9,} {accuracy[name]:>9.3f}"
    print(f"{row} {milliseconds[name]:>8.1f}")
for name in BUILDERS:
    assert losses[name][-1] < losses[name][0], f"{name}: the training loss falls"
if not args.quick:
    for name in ("plain", "separable", "MobileNetV2"):
        assert accuracy[name] > 0.9, f"{name} learns the digits ({accuracy[name]:.3f})"
    assert accuracy["binarized"] > 0.75, "the binarized network learns too"
assert sizes["binarized"] < sizes["plain"] / 8, "one bit per weight"

# %% [markdown]
# ## The model zoo
#
# The full-size networks of the course, with the parameter counts of torchvision (MobileNetV2,
# GoogLeNet without its auxiliary classifiers) and Keras (Xception's trainable parameters).
# Each also has a small 32x32 variant (`mobilenet_v2_small`, `googlenet_small`,
# `xception_small`) for training on a laptop.

# %%
zoo = {"mobilenet_v1": 4_231_976, "mobilenet_v2": 3_504_872, "googlenet": 6_624_904, "xception": 22_855_952,
       "resnet18": 11_689_512}
if args.quick:
    zoo = {"mobilenet_v2": zoo["mobilenet_v2"]}
for name, published in zoo.items():
    n = sum(p.numel() for p in models.get_model(name).parameters())
    print(f"{name:14s} input {models.INPUT_SHAPES[name]}: {n:>12,} parameters")
    assert n == published, f"{name}: {n} parameters, published {published}"

# %% [markdown]
# ## The picture
#
# `14_efficient_architectures.png`: parameters and FLOPs per network, and accuracy against time
# per training step.

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

names = list(BUILDERS)
colours = [f"C{i}" for i in range(len(names))]
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
bars = axes[0].bar(names, [params[n] for n in names], color=colours)
axes[0].bar_label(bars, [f"{params[n]:,}" for n in names], fontsize=8)
axes[0].set_ylabel("parameters")
axes[0].set_title("parameters (binarized: 1 bit each)")
bars = axes[1].bar(names, [flops[n] / 1e6 for n in names], color=colours)
axes[1].bar_label(bars, [f"{flops[n] / 1e6:.1f}" for n in names], fontsize=8)
axes[1].set_ylabel("MFLOPs per image (summary)")
axes[1].set_title(f"forward FLOPs of one {SIZE}x{SIZE} image")
for ax in axes[:2]:
    ax.tick_params(axis="x", labelsize=8)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.15)
for name, colour in zip(names, colours):
    axes[2].scatter(milliseconds[name], accuracy[name], s=120, color=colour, label=name)
axes[2].legend(fontsize=8, loc="lower right")
axes[2].set_xlabel("ms per training step (batch 32)")
axes[2].set_ylabel("test accuracy")
axes[2].set_title(f"accuracy after {epochs} epochs")
axes[2].set_xlim(0, max(milliseconds.values()) * 1.3)
fig.suptitle(f"four networks of the same shape on the digits ({SIZE}x{SIZE})")
fig.tight_layout()
fig.savefig(OUT / "14_efficient_architectures.png", dpi=90)
plt.close(fig)
print("saved", OUT / "14_efficient_architectures.png")
