# %% [markdown]
# # 9. Batch normalization and residual connections
#
# Deeper networks should be able to do at least as well as shallow ones, yet a deep "plain"
# stack of convolutions often does not train at all: the gradient that reaches the first
# layers is a product of many per-layer factors, and it **vanishes** (or explodes). Two ideas
# made deep CNNs trainable:
#
# * **Batch normalization** (Ioffe and Szegedy, 2015) normalizes every channel over the
#   mini-batch, $\hat x = (x - \mu_B) / \sqrt{\sigma_B^2 + \epsilon}$, then rescales,
#   $y = \gamma \hat x + \beta$ with learned $\gamma, \beta$. Each layer then sees inputs of a
#   fixed scale, whatever the layers before it do. At test time it uses running averages of
#   $\mu$ and $\sigma^2$ instead of the batch's.
# * **Residual connections** (He et al., 2016): a block computes
#   $y = \mathrm{ReLU}(F(x) + x)$, so the layers only learn the residual $F(x) = H(x) - x$,
#   and the identity path carries the signal, and the gradient, past them:
#   $\partial y / \partial x = \partial F / \partial x + I$.
#
# We build three networks of the same depth (14 weight layers, 16 channels, for the 8x8
# digits): a plain stack of conv-ReLU, the same stack with batch norm after every
# convolution, and a ResNet of `nn.BasicBlock`s, and compare their gradients at
# initialisation and their training curves.

# %%
import argparse
import sys
from pathlib import Path

import numpy as np

import tinygrad_cnn
import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor, data, nn, optim, training, viz

parser = argparse.ArgumentParser(description="Tutorial 9: batch normalization and residual connections")
parser.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
parser.add_argument("--out", default=None, help="folder for the pictures (default: tutorials/out)")
# As a script an unknown flag (a typo such as --output for --out) is an error; in a notebook
# the Jupyter kernel's own flags (-f kernel-<id>.json) are in sys.argv: parse_known_args skips them.
args = parser.parse_known_args()[0] if "ipykernel" in sys.modules else parser.parse_args()
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(args.out) if args.out else HERE / "out"
OUT.mkdir(parents=True, exist_ok=True)
tinygrad_cnn.manual_seed(0)

# %% [markdown]
# ## What batch normalization does to a batch
#
# In training mode, every channel of the output has mean 0 and variance 1 over the batch and
# the positions (with $\gamma = 1, \beta = 0$ at initialisation), however the input was
# scaled and shifted.

# %%
bn = nn.BatchNorm2d(4)
x = Tensor(np.random.default_rng(0).normal(5.0, 3.0, (32, 4, 6, 6)).astype(np.float32))
y = bn(x).numpy()
print(f"input: mean {x.numpy().mean():.2f}, std {x.numpy().std():.2f}")
print(
    "output per channel: mean", np.round(y.mean(axis=(0, 2, 3)), 4), "std", np.round(y.std(axis=(0, 2, 3)), 4)
)
np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-4, err_msg="batch norm: zero mean per channel")
np.testing.assert_allclose(
    y.std(axis=(0, 2, 3)), 1, atol=1e-3, err_msg="batch norm: unit variance per channel"
)
print("running mean after one batch (momentum 0.1):", np.round(bn.running_mean.numpy(), 3))
assert np.allclose(bn.running_mean.numpy(), 0.1 * x.numpy().mean(axis=(0, 2, 3)), atol=1e-4)
bn.eval()  # evaluation mode: normalize with the running statistics instead
assert not np.allclose(bn(x).numpy(), y), "in eval mode the output no longer depends on the batch"

# %% [markdown]
# ## Three networks of the same depth
#
# `blocks` residual blocks of two 3x3 convolutions each, plus the first convolution and the
# final linear layer: 2 * 6 + 1 = 13 convolutions and 1 dense layer.

# %%
C, BLOCKS = 16, 6


def plain_network(batch_norm: bool) -> nn.Sequential:
    layers = [nn.Conv2d(1, C, 3, padding=1), nn.ReLU()]
    for _ in range(2 * BLOCKS):
        layers += [nn.Conv2d(C, C, 3, padding=1, bias=not batch_norm)]
        layers += [nn.BatchNorm2d(C)] if batch_norm else []
        layers += [nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(C, 10))


def residual_network() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, C, 3, padding=1, bias=False),
        nn.BatchNorm2d(C),
        nn.ReLU(),
        *[nn.BasicBlock(C, C) for _ in range(BLOCKS)],
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(C, 10),
    )


def conv_layers(model: nn.Module) -> list:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


networks = {
    "plain": plain_network(False),
    "plain + batch norm": plain_network(True),
    "ResNet": residual_network(),
}
for name, net in networks.items():
    n_params = sum(p.numel() for p in net.parameters())
    print(f"{name:20s}: {len(conv_layers(net))} convolutions, {n_params:,} parameters")
    assert len(conv_layers(net)) == 2 * BLOCKS + 1

# %% [markdown]
# ## Gradients at initialisation
#
# One backward pass on a batch of digits, before any training. For each convolution we
# measure the norm of the gradient of the loss with respect to its weights. In the plain
# network it shrinks by orders of magnitude on the way from the output back to the input: the
# first layers get almost no learning signal. Batch norm and the residual shortcuts keep it
# at the same scale through the whole depth.

# %%
x_train, y_train, x_test, y_test = data.load_digits()
if args.quick:
    x_train, y_train, x_test, y_test = x_train[:480], y_train[:480], x_test[:160], y_test[:160]
batch, target = Tensor(x_train[:64]), Tensor(y_train[:64])
gradient_norms = {}
for name, net in networks.items():
    F.cross_entropy(net(batch), target).backward()
    gradient_norms[name] = [float(np.linalg.norm(c.weight.grad.numpy())) for c in conv_layers(net)]
    net.zero_grad()
    g = gradient_norms[name]
    print(f"{name:20s}: |dL/dW| first conv {g[0]:.2e}, last conv {g[-1]:.2e}, ratio {g[0] / g[-1]:.1e}")
assert gradient_norms["plain"][0] < 1e-3 * gradient_norms["plain"][-1], "plain: the gradient vanishes"
for name in ("plain + batch norm", "ResNet"):
    assert gradient_norms[name][0] > 1e-2 * gradient_norms[name][-1], f"{name}: the gradient survives"
    assert gradient_norms[name][0] > 1e3 * gradient_norms["plain"][0]

# %% [markdown]
# ## Training side by side
#
# The same optimizer (SGD with momentum), the same data, the same number of epochs. The plain
# network stays at chance (loss $\ln 10 \approx 2.30$): its first layers cannot learn. The other
# two train; the ResNet fastest.

# %%
epochs = 2 if args.quick else 4
batch_size = 32 if args.quick else 64
histories, trainers = {}, {}
for name, net in networks.items():
    tinygrad_cnn.manual_seed(1)
    trainers[name] = training.Trainer(
        net, optim.SGD(net.parameters(), lr=0.05, momentum=0.9), batch_size=batch_size, seed=0, progress=False
    )
    histories[name] = (
        trainers[name].fit((x_train, y_train), epochs=epochs, validation_data=(x_test, y_test)).history
    )
    h = histories[name]
    print(
        f"{name:20s}: train loss {' '.join(f'{v:.3f}' for v in h['loss'])}; "
        f"final val accuracy {h['val_accuracy'][-1]:.3f}"
    )
final = {name: h["loss"][-1] for name, h in histories.items()}
assert final["plain"] > 2.2, "the deep plain network does not learn"
assert final["ResNet"] < final["plain"] - 0.2, "the residual network learns"
if not args.quick:
    assert final["plain + batch norm"] < final["plain"] - 0.5, "batch norm makes the deep network trainable"
    assert final["ResNet"] < 0.5, "the residual network fits the training data"
    assert final["ResNet"] < final["plain + batch norm"], "the residual network trains fastest"

# %% [markdown]
# ## A caveat: batch norm at test time
#
# In evaluation mode batch norm divides by *running averages* of the batch statistics
# (momentum 0.1). While the weights still change fast, those averages trail behind the
# statistics of the current weights, and the validation accuracy of the plain + batch-norm
# network can lag far behind its training accuracy. Recomputing the averages once with the
# final weights (a pass over the training data in training mode, without gradients, with
# `momentum=None`: a plain cumulative average) closes most of the gap. The ResNet has the same
# issue, to a lesser degree: its identity paths carry part of the signal past the batch norms.

# %%
recalibrated = {}
for name in ("plain + batch norm", "ResNet"):
    net = networks[name]
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the recalibration batches
    net.train()
    with tinygrad_cnn.no_grad():
        for start in range(0, len(x_train), 128):
            net(Tensor(x_train[start : start + 128]))
    recalibrated[name] = trainers[name].evaluate((x_test, y_test))["accuracy"]
    print(
        f"{name:20s}: val accuracy {histories[name]['val_accuracy'][-1]:.3f} -> {recalibrated[name]:.3f} "
        "after recomputing the batch-norm statistics"
    )
if not args.quick:
    assert recalibrated["plain + batch norm"] > 0.8, (
        "with fresh statistics the batch-norm network generalises"
    )
    assert recalibrated["ResNet"] > 0.9, "and so does the ResNet"

# %% [markdown]
# ## Pictures
#
# `09_training_curves.png`: loss (left) and validation accuracy (right) of the three networks.
# `09_gradients.png`: the gradient norm of every convolution at initialisation.

# %%
curves = {name: {"loss": h["loss"], "val_accuracy": h["val_accuracy"]} for name, h in histories.items()}
viz.training_curves(
    curves, path=OUT / "09_training_curves.png", title=f"{2 * BLOCKS + 2} weight layers deep, on the digits"
)

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(8, 4.5))
for name, norms in gradient_norms.items():
    ax.semilogy(range(1, len(norms) + 1), norms, "o-", label=name)
ax.set_xlabel("convolution (1 = next to the input)")
ax.set_ylabel("|dL/dW| at initialisation")
ax.set_title("the gradient vanishes on the way back through a plain network")
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig(OUT / "09_gradients.png", dpi=90)
plt.close(fig)
print("saved", OUT / "09_training_curves.png", OUT / "09_gradients.png")
