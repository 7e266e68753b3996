# %% [markdown]
# # 21. Common pitfalls, and how to diagnose them
#
# A network that "does not learn" rarely says why. The loss curve shows *that* something is
# wrong; the numbers inside the network show *what*. This tutorial breaks a small network on
# purpose, six ways, and diagnoses each break from measurements, with two tools:
#
# * **hooks**: `module.register_forward_hook(hook)` calls `hook(module, input, output)` after
#   every forward pass of that layer, and `module.register_full_backward_hook(hook)` calls
#   `hook(module, grad_input, grad_output)` with the gradients flowing through it (PyTorch's
#   signatures; `handle.remove()` takes a hook off again);
# * **`Trainer(..., layer_statistics=True)`**, which uses those hooks to record, per layer and
#   per batch, the gradient norm of the layer's weights, the update ratio
#   lr * |grad| / |weight|, and the mean, standard deviation, fraction of zeros and fraction
#   of *dead* units (never positive in a whole batch) of the layer's output.
#
# The pitfalls: dead ReLUs, vanishing gradients, exploding gradients, a learning rate that is
# too large, unnormalised inputs, and leakage between validation and test data. Each section
# provokes one, asserts the diagnosis, and shows the fix. Data: scikit-learn's bundled 8x8
# digits (offline), as 64-pixel vectors for small fully connected networks, so every
# experiment takes a second or two.

# %%
import argparse
import sys
from pathlib import Path

import numpy as np

import tinygrad_cnn
from tinygrad_cnn import Tensor, data, nn, optim, training

parser = argparse.ArgumentParser(description="Tutorial 21: common pitfalls and their diagnosis")
parser.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
parser.add_argument("--out", default=None, help="folder for the pictures (default: tutorials/out)")
parser.add_argument("--seed", type=int, default=0, help="seed of the initialisations and the batch order")
# the Jupyter kernel's own flags (-f kernel-<id>.json) are in sys.argv: parse_known_args skips them.
args = parser.parse_known_args()[0] if "ipykernel" in sys.modules else parser.parse_args()
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(args.out) if args.out else HERE / "out"
OUT.mkdir(parents=True, exist_ok=True)

x_train, y_train, x_test, y_test = data.load_digits()
x_train, x_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
EPOCHS = 6  # every experiment here takes a second or two: --quick changes nothing
print(f"digits: train {x_train.shape}, test {x_test.shape}; pixels in [{x_train.min()}, {x_train.max()}]")


def mlp(widths, activation=nn.ReLU):
    """Linear-activation-...-Linear with the given widths (64 inputs ... 10 classes)."""
    tinygrad_cnn.manual_seed(args.seed)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def train(model, lr=0.1, x=x_train, x_eval=x_test, epochs=EPOCHS):
    """SGD with layer statistics on; returns (trainer, history, test accuracy). A loss that
    overflows stops the Trainer with a FloatingPointError: then history is None and the
    accuracy 0, and the statistics recorded up to that batch remain."""
    trainer = training.Trainer(model, optim.SGD(model.parameters(), lr=lr), batch_size=32, seed=args.seed,
                               progress=False, layer_statistics=True)
    try:
        history = trainer.fit((x, y_train), epochs=epochs)
    except FloatingPointError as error:
        print("  the trainer stopped:", error)
        return trainer, None, 0.0
    return trainer, history, trainer.evaluate((x_eval, y_test))["accuracy"]


def linear_layers(model):
    """(name, layer) of every Linear layer, input side first."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]


def first_over_last(record):
    """A per-layer record's first-batch value, first Linear layer over last."""
    names = sorted(record, key=int)
    return record[names[0]][0] / record[names[-1]][0]


# %% [markdown]
# ## 0. A healthy baseline
#
# A 64-64-64-10 ReLU network with PyTorch's default initialisation, SGD with learning rate 0.1.
# Its statistics are the reference for what "normal" looks like: gradient norms of the same
# order in every layer, update ratios around $10^{-3}$ to $10^{-2}$, and some dead units
# (a unit silent for a whole batch of 32 is common; silent for every batch is not).

# %%
healthy = mlp([64, 64, 64, 10])
healthy_run = trainer, history, healthy_accuracy = train(healthy)
stats = healthy_stats = trainer.layer_statistics
print(stats.report())
print(f"healthy: loss {history['loss'][0]:.3f} -> {history['loss'][-1]:.3f}, "
      f"test accuracy {healthy_accuracy:.3f}")
assert healthy_accuracy > 0.85
healthy_dead = float(np.mean(stats.activations["1"]["dead_fraction"]))
print(f"healthy: on average {healthy_dead:.0%} of the first ReLU layer's units are silent for a whole batch")
assert healthy_dead < 0.3

# %% [markdown]
# ## 1. Dead ReLUs
#
# A ReLU unit whose input is negative for every example outputs 0 and passes back a zero
# gradient: nothing ever moves it again, it is *dead*. A large negative bias does it (here
# on purpose; in practice a learning-rate spike that throws the biases far negative). The
# diagnosis: `dead_fraction` near 1 after the layer, and a gradient norm of exactly 0 for
# the layer before it, whose weights can then never change. The cure is prevention (biases
# initialised at 0, a moderate learning rate: the baseline above); a LeakyReLU keeps a small
# gradient for negative inputs, so such units are not stuck for ever, only very slow.

# %%
dead = mlp([64, 64, 64, 10])
dead[0].bias.data[...] = -10.0  # every pre-activation is negative: sum of 64 pixels * small weights - 10
trainer, history, dead_accuracy = train(dead, epochs=3)
stats = dead_stats = trainer.layer_statistics
dead_fraction = stats.activations["1"]["dead_fraction"][-1]
print(f"dead ReLUs: dead fraction after layer 1: {dead_fraction:.2f}, gradient norm of layer 0: "
      f"{stats.gradient_norms['0'][-1]:.3g}, test accuracy {dead_accuracy:.3f}")
assert dead_fraction == 1.0, "every unit of the first hidden layer is dead"
assert max(stats.gradient_norms["0"]) == 0.0, "no gradient reaches the first layer"
assert dead_accuracy < 0.35, "the rest of the network learns little from a constant"
# the fix: LeakyReLU keeps a small slope for negative inputs, so the gradient is never exactly 0
leaky = mlp([64, 64, 64, 10], activation=lambda: nn.LeakyReLU(0.1))
leaky[0].bias.data[...] = -10.0
trainer, _, leaky_accuracy = train(leaky, epochs=3)
leaky_gradient = trainer.layer_statistics.gradient_norms["0"][-1]
print(f"  LeakyReLU(0.1) with the same biases: gradient norm of layer 0: {leaky_gradient:.3g}, "
      f"test accuracy {leaky_accuracy:.3f}")
assert min(trainer.layer_statistics.gradient_norms["0"]) > 0, "a leaky unit always passes a gradient"

# %% [markdown]
# ## 2. Vanishing gradients
#
# Back-propagation multiplies one factor per layer: the weights and the activation's
# derivative. The sigmoid's derivative is at most 1/4, so through a deep sigmoid stack the
# gradient shrinks geometrically on its way to the input, and the first layers learn almost
# nothing. Diagnosis: the gradient norms per layer, first layer against last. Here a
# **backward hook** on every activation layer also records the gradient of the loss with
# respect to its output, $\partial L / \partial a_l$, the quantity that vanishes.

# %%
depth = 10
widths = [64] + [32] * depth + [10]


def activation_gradient_norms(model, activation):
    """|dL/d(output)| of every ``activation`` layer on one batch, input side first, recorded
    by backward hooks that are removed afterwards."""
    norms = {}

    def hook(module, grad_input, grad_output, name=None):
        norms[name] = float(np.linalg.norm(grad_output[0].numpy()))

    handles = [m.register_full_backward_hook(lambda m, gi, go, name=name: hook(m, gi, go, name))
               for name, m in model.named_modules() if isinstance(m, activation)]
    nn.CrossEntropyLoss()(model(Tensor(x_train[:128])), Tensor(y_train[:128])).backward()
    for handle in handles:
        handle.remove()
    model.zero_grad()
    return [norms[name] for name in sorted(norms, key=int)]


sigmoid_net = mlp(widths, activation=nn.Sigmoid)
sigmoid_flow = activation_gradient_norms(sigmoid_net, nn.Sigmoid)
print("dL/d(activation) per sigmoid layer, input side first:", " ".join(f"{g:.1e}" for g in sigmoid_flow))
shrink = sigmoid_flow[0] / sigmoid_flow[-1]
print(f"first / last sigmoid layer: {shrink:.1e}")
assert shrink < 1e-4, "the gradient vanishes through ten sigmoid layers"
trainer, _, _ = train(sigmoid_net, epochs=1)
sigmoid_gradients = trainer.layer_statistics.gradient_norms
sigmoid_ratio = first_over_last(sigmoid_gradients)
# the fix: ReLU and He initialisation (std sqrt(2 / fan_in)) keep the scale from layer to layer
relu_net = mlp(widths, activation=nn.ReLU)
for _, layer in linear_layers(relu_net):
    nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
trainer, _, _ = train(relu_net, epochs=1)
relu_gradients = trainer.layer_statistics.gradient_norms
relu_ratio = first_over_last(relu_gradients)
print(f"weight-gradient norm, first / last layer: sigmoid {sigmoid_ratio:.1e}, "
      f"ReLU + He init {relu_ratio:.2f}")
assert sigmoid_ratio < 1e-3 and relu_ratio > 0.1

# %% [markdown]
# ## 3. Exploding gradients
#
# The same product can grow: with weights initialised too large (here twice He's standard
# deviation, a factor of about 2 per layer), activations and gradients grow by orders of
# magnitude through the layers. Diagnosis: activation standard deviations that grow layer by
# layer, gradients dL/d(activation) largest at the input (the backward hooks again), a loss
# far above chance level. (The weights' gradients $\delta_l a_{l-1}^T$ need not show it: the
# growing $\delta$ meets shrinking activations on the input side.)

# %%
exploding = mlp(widths, activation=nn.ReLU)
for _, layer in linear_layers(exploding):
    nn.init.normal_(layer.weight, 0.0, 2 * np.sqrt(2 / layer.weight.shape[1]))
exploding_flow = activation_gradient_norms(exploding, nn.ReLU)
trainer, history, _ = train(exploding, lr=1e-3, epochs=1)
stats = trainer.layer_statistics
relus = [name for name, m in exploding.named_modules() if isinstance(m, nn.ReLU)]
growth = stats.activations[relus[-1]]["std"][0] / stats.activations[relus[0]]["std"][0]
explode_ratio = exploding_flow[0] / exploding_flow[-1]
first_loss = history["loss"][0] if history else float("inf")
print(f"activation std, last / first hidden layer: {growth:.1e}; dL/d(activation) first / last: "
      f"{explode_ratio:.1e}; mean loss of the first epoch {first_loss:.3g} (chance: {np.log(10):.2f})")
assert growth > 100 and explode_ratio > 100 and first_loss > 10

# %% [markdown]
# ## 4. A learning rate that is too large
#
# Each step moves a weight by lr * gradient. When that step is a large fraction of the
# weight itself, the optimiser overshoots every valley and the loss grows instead of
# falling, until it overflows (the `Trainer` stops with a `FloatingPointError` when the loss
# is no longer finite), or until the ReLUs die and the network is stuck at chance level.
# Diagnosis: the update ratio lr * |grad| / |weight|: 1e-3 to 1e-2 is healthy, above 0.1 each
# step rewrites a good part of the weights, and far below 1e-3 training crawls.

# %%
update_ratios, losses, accuracies = {}, {}, {}
for lr in (0.01, 0.1, 3.0):  # 0.1 is the healthy baseline's run
    trainer, history, accuracies[lr] = healthy_run if lr == 0.1 else train(mlp([64, 64, 64, 10]), lr=lr)
    losses[lr] = history["loss"] if history else [float("inf")]
    stats = trainer.layer_statistics
    update_ratios[lr] = float(np.median([np.median(v[:5]) for v in stats.update_ratios.values()]))
    print(f"lr {lr}: median update ratio of the first steps {update_ratios[lr]:.2g}, loss per epoch "
          f"{' '.join(f'{v:.3g}' for v in losses[lr])}, test accuracy {accuracies[lr]:.3f}, dead units "
          f"after the first ReLU {stats.activations['1']['dead_fraction'][-1]:.2f}")
chance = np.log(10)  # the cross-entropy of a uniform guess over 10 classes
assert min(losses[3.0]) > 0.9 * chance and accuracies[3.0] < 0.25, "lr 3.0: stuck at chance (or overflowed)"
assert losses[0.1][-1] < 0.5 * losses[0.1][0] and accuracies[0.1] > 0.85, "lr 0.1 trains"
assert losses[0.01][-1] > 0.9 * chance, "lr 0.01: six epochs are not enough, the loss has barely moved"
assert update_ratios[3.0] > 0.05 > update_ratios[0.1] > 1e-3 > update_ratios[0.01]
assert stats.activations["1"]["dead_fraction"][-1] > 0.5, "the large steps killed most ReLUs (pitfall 1)"

# %% [markdown]
# ## 5. Unnormalised inputs
#
# The digits arrive as pixel values in [0, 1]. Feed the raw 0-255 range instead and the
# first layer's outputs are 255 times larger: the same learning rate is now far too large
# for the first layer, the softmax saturates, training stalls or diverges. Diagnosis: the
# input statistics, and the first layer's activation scale. The fix: standardise with the
# mean and standard deviation *of the training set* (also applied to the test set).

# %%
raw_train, raw_test = x_train * 255.0, x_test * 255.0
trainer, _, raw_accuracy = train(mlp([64, 64, 64, 10]), x=raw_train, x_eval=raw_test)
raw_stats = trainer.layer_statistics
raw_std = raw_stats.activations["0"]["std"][0]
mean, std = raw_train.mean(axis=0), raw_train.std(axis=0) + 1e-3  # training-set statistics only
trainer, _, standard_accuracy = train(mlp([64, 64, 64, 10]), x=(raw_train - mean) / std,
                                      x_eval=(raw_test - mean) / std)
standard_stats = trainer.layer_statistics
standard_std = standard_stats.activations["0"]["std"][0]
print(f"inputs 0-255: mean {raw_train.mean():.1f}, std {raw_train.std():.1f}; first-layer output std "
      f"{raw_std:.3g}, test accuracy {raw_accuracy:.3f}")
print(f"standardised inputs: first-layer output std {standard_std:.3g}, "
      f"test accuracy {standard_accuracy:.3f}")
assert raw_std > 50 * standard_std and raw_accuracy < standard_accuracy - 0.2

# %% [markdown]
# ## 6. Leakage between validation and test data
#
# The validation set chooses: the epoch, the learning rate, the model. The test set must then
# be data the choice never saw, or its score is as optimistic as the choice. A common bug
# puts the same images in both, e.g. a dataset assembled from two exports that overlap,
# split at random. Diagnosis: look for duplicates across the splits (a hash of each image's
# bytes finds exact copies), and compare the test score of the chosen model with a truly
# fresh set.
#
# Here 100 candidate models (nearest-centroid classifiers on random subsets of 8 pixels,
# cheap stand-ins for 100 hyper-parameter settings) are ranked on a validation set of 60 of
# the held-out images, and the best one is scored on a test set. In the leaky split the test
# set repeats 50 of the validation images (and has 10 new ones); in the clean split it shares
# none. One split is a coin toss, so the experiment is repeated over random splits and the
# *average* optimism is what we assert.

# %%
def digests(images):
    """The set of exact images (their bytes): two splits share an image if they share a digest."""
    return {np.ascontiguousarray(image).tobytes() for image in images}


CENTROIDS = np.stack([x_train[y_train == c].mean(axis=0) for c in range(10)])  # mean image per class


def centroid_accuracy(pixels, images, labels):
    """Accuracy of the nearest class mean, looking only at ``pixels``."""
    distances = ((images[:, None, pixels] - CENTROIDS[None, :, pixels]) ** 2).sum(axis=2)
    return float((distances.argmin(axis=1) == labels).mean())


repeats = 40
gaps, overlaps = [], []
for repeat in range(repeats):
    order = np.random.default_rng(repeat).permutation(len(y_test))
    val, clean_test = order[:60], order[70:]
    leaky_test = np.concatenate([val[:50], order[60:70]])  # the bug: 50 validation images again
    overlaps.append((len(digests(x_test[val]) & digests(x_test[leaky_test])),
                     len(digests(x_test[val]) & digests(x_test[clean_test]))))
    rng = np.random.default_rng(1000 + repeat)
    candidates = [rng.choice(64, 8, replace=False) for _ in range(100)]
    best = max(candidates, key=lambda pixels: centroid_accuracy(pixels, x_test[val], y_test[val]))
    gaps.append(centroid_accuracy(best, x_test[leaky_test], y_test[leaky_test])
                - centroid_accuracy(best, x_test[clean_test], y_test[clean_test]))
gaps = np.array(gaps)
standard_error = gaps.std(ddof=1) / np.sqrt(len(gaps))
print(f"duplicates between validation and test (first split): leaky {overlaps[0][0]}, clean {overlaps[0][1]}")
print(f"leaky minus clean test accuracy of the chosen model over {repeats} splits: mean {gaps.mean():+.3f} "
      f"(standard error {standard_error:.3f}), higher in {np.mean(gaps > 0):.0%} of the splits")
assert all(o == (50, 0) for o in overlaps), "the digests find exactly the 50 repeated images"
assert gaps.mean() > 0.03 and gaps.mean() > 3 * standard_error, "the leaky test score is optimistic"

# %% [markdown]
# ## Pictures
#
# `21_diagnosis.png`, one panel per pitfall: the dead fraction per layer (healthy against
# the dead-bias network), dL/d(activation) per layer for the sigmoid and the exploding
# network, the weights' gradient norms per layer (sigmoid against ReLU + He), the loss per
# epoch at three learning rates, the output scale per layer for raw and standardised
# inputs, and the distribution of the leaky test score's optimism over the random splits.

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
ax = axes[0, 0]
for label, record in (("healthy", healthy_stats), ("bias -10", dead_stats)):
    names = [n for n in record.activations if isinstance(dict(healthy.named_modules())[n], nn.ReLU)]
    ax.bar(np.arange(len(names)) + (0.2 if label == "healthy" else -0.2),
           [record.activations[n]["dead_fraction"][-1] for n in names], width=0.4, label=label)
ax.set(title="1. dead ReLUs", xlabel="ReLU layer (its name in the model)", ylabel="fraction of dead units",
       ylim=(0, 1.05), xticks=range(len(names)), xticklabels=names)
ax.legend()
ax = axes[0, 1]
ax.semilogy(range(1, depth + 1), sigmoid_flow, "o-", label="sigmoid, default init (vanishing)")
ax.semilogy(range(1, depth + 1), exploding_flow, "s-", label="ReLU, 2x He init (exploding)")
ax.set(title="2-3. |dL/d(activation)| per layer", xlabel="activation layer (input side first)", ylabel="norm")
ax.legend()
ax = axes[0, 2]
for label, record in (("sigmoid", sigmoid_gradients), ("ReLU + He init", relu_gradients)):
    names = sorted(record, key=int)
    ax.semilogy(range(1, len(names) + 1), [record[n][0] for n in names], "o-", label=label)
ax.set(title="2. weight-gradient norm per layer", xlabel="linear layer (input side first)", ylabel="norm")
ax.legend()
ax = axes[1, 0]
for lr, values in losses.items():
    finite = [v for v in values if np.isfinite(v)]
    ax.semilogy(range(1, len(finite) + 1), finite, "o-",
                label=f"lr {lr} (update ratio {update_ratios[lr]:.1g})")
ax.set(title="4. training loss per epoch", xlabel="epoch", ylabel="cross-entropy")
ax.legend()
ax = axes[1, 1]
for label, record in (("pixels 0-255", raw_stats), ("standardised", standard_stats)):
    names = [n for n in record.activations if isinstance(dict(healthy.named_modules())[n], nn.Linear)]
    ax.semilogy(range(1, len(names) + 1), [record.activations[n]["std"][0] for n in names], "o-", label=label)
ax.set(title="5. output std per linear layer (first batch)", xlabel="linear layer (input side first)",
       ylabel="std", xticks=range(1, len(names) + 1))
ax.legend()
ax = axes[1, 2]
ax.hist(gaps, bins=12, color="tab:red", alpha=0.8)
ax.axvline(0, color="k", lw=1)
ax.axvline(gaps.mean(), color="tab:blue", lw=2, label=f"mean {gaps.mean():+.3f}")
ax.set(title="6. leaky minus clean test accuracy", xlabel="accuracy difference of the chosen model",
       ylabel="random splits")
ax.legend()
fig.suptitle("Six pitfalls, diagnosed from hooks and layer statistics")
fig.tight_layout()
fig.savefig(OUT / "21_diagnosis.png", dpi=80)
plt.close(fig)
print("saved", OUT / "21_diagnosis.png")
