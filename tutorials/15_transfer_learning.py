# %% [markdown]
# # 15. Transfer learning: standing on the shoulders of giants
#
# Training a convolutional network from scratch needs many labelled images. Often we have few,
# but someone trained a network on a large, *related* dataset. Its early layers learned
# general features (edges, strokes, corners) that are useful for our task too; only the last
# layers are specific to its classes. Transfer learning reuses them. The course's three
# options, from the least to the most training:
#
# 1. **features only**: freeze the whole pretrained feature extractor and train a new
#    classifier on its outputs. Cheapest: the features of every image can be computed once;
# 2. **fine-tune the top**: freeze the first layers, train the last feature layers and a new
#    classifier;
# 3. **fine-tune everything**: start from the pretrained weights and train every layer, the
#    pretrained ones with a smaller learning rate (optimizer *parameter groups*) so that a
#    few noisy batches do not wreck what they learned.
#
# The experiment: a small CNN is pretrained on MNIST digits 0-4. The new task is digits 5-9
# with only **50 labelled images per class**. We compare the three options with training
# the same network from scratch on those 250 images.
#
# The tools: `module.requires_grad_(False)` freezes a module's parameters (they then get no
# gradient, and the optimizers skip them), `model.classifier = ...` or `model[-1] = ...`
# replaces the head, `optim.Adam([{"params": ..., "lr": ...}, ...])` gives each group its own
# learning rate, and `pretrained.load_pretrained(model, path)` loads weights saved as
# `.npz`, `.safetensors` or (with PyTorch) torchvision `.pth` files.
#
# **Data**: the shared MNIST test set (`--mnist`, default `../shared/data/mnist`, its 10,000
# `t10k` images); without it, scikit-learn's bundled 8x8 digits upsampled to 28x28 (with a
# printed note and looser checks: they are fewer).

# %%
import argparse
import sys
from pathlib import Path

import numpy as np

import tinygrad_cnn
from tinygrad_cnn import Tensor, data, nn, no_grad, optim, pretrained, training

parser = argparse.ArgumentParser(description="Tutorial 15: transfer learning")
parser.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
parser.add_argument("--out", default=None, help="folder for the pictures (default: tutorials/out)")
parser.add_argument("--mnist", default=None,
                    help="folder with the MNIST IDX files (default: ../shared/data/mnist)")
parser.add_argument("--seeds", type=int, default=None,
                    help="how many draws of the 250 labelled images to average over (default: 2; quick: 1)")
# the Jupyter kernel's own flags (-f kernel-<id>.json) are in sys.argv: parse_known_args skips them.
args = parser.parse_known_args()[0] if "ipykernel" in sys.modules else parser.parse_args()
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(args.out) if args.out else HERE / "out"
OUT.mkdir(parents=True, exist_ok=True)
SEEDS = args.seeds or (1 if args.quick else 2)
EPOCHS = 3 if args.quick else 5  # on the 250 labelled images

mnist = Path(args.mnist) if args.mnist else HERE.parent.parent / "shared" / "data" / "mnist"
try:
    images, labels = data.load_mnist(mnist, "test")
    on_mnist = True
except FileNotFoundError:
    print(f"note: no MNIST files in {mnist}; using scikit-learn's bundled 8x8 digits, upsampled to 28x28")
    x_a, y_a, x_b, y_b = data.load_digits(image_size=28)
    images, labels = np.concatenate([x_a, x_b]), np.concatenate([y_a, y_b])
    on_mnist = False
order = np.random.default_rng(0).permutation(len(labels))
images, labels = images[order], labels[order]
source_index, target_index = np.nonzero(labels < 5)[0], np.nonzero(labels >= 5)[0]
n_pretrain = min(800 if args.quick else 2500, len(source_index) - 200)
x_source, y_source = images[source_index[:n_pretrain]], labels[source_index[:n_pretrain]]
x_source_val, y_source_val = images[source_index[-200:]], labels[source_index[-200:]]
x_target, y_target = images[target_index], labels[target_index] - 5  # digits 5-9 as classes 0-4
print(f"data: {'MNIST test set' if on_mnist else 'bundled digits'}; pretraining on {n_pretrain} images of "
      f"0-4, the new task has {len(y_target)} images of 5-9")

# %% [markdown]
# ## The network, pretrained on digits 0-4
#
# `features`: two conv-ReLU-pool blocks (28 -> 14 -> 7, 8 and 16 maps); `classifier`: a
# dense layer on the 16 x 7 x 7 features and the output layer.

# %%
def new_classifier():
    return nn.Sequential(nn.Flatten(), nn.Linear(16 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 5))


def new_network(seed):
    tinygrad_cnn.manual_seed(seed)
    features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    return nn.Sequential({"features": features, "classifier": new_classifier()})


source_model = new_network(0)
trainer = training.Trainer(source_model, optim.Adam(source_model.parameters(), lr=2e-3), batch_size=32,
                           seed=0, progress=False)
trainer.fit((x_source, y_source), epochs=1 if args.quick else 2)
source_accuracy = trainer.evaluate((x_source_val, y_source_val))["accuracy"]
print(f"pretrained network: accuracy on held-out digits 0-4: {source_accuracy:.3f}")
assert source_accuracy > (0.6 if args.quick or not on_mnist else 0.93)

# The pretrained weights, saved and read back as a safetensors file (as a downloaded model would be).
weights = OUT / "15_pretrained_0to4.safetensors"
pretrained.save_safetensors(source_model.state_dict(), weights)
print(f"saved the pretrained weights: {weights.name}, {weights.stat().st_size:,} bytes")

# %% [markdown]
# ## Freezing, a new head, parameter groups
#
# Frozen parameters get no gradient (`grad` stays `None`), so an optimizer that holds them
# leaves them alone. The check below trains one batch two ways: the whole network with its
# features frozen, and the classifier alone on features computed beforehand. The classifier
# ends up with the same weights: option 1 is "train a classifier on fixed features", and the
# features can be computed once for all epochs.

# %%
def from_pretrained(seed):
    model = new_network(seed)
    pretrained.load_pretrained(model, weights)  # strict: every name and shape must match
    tinygrad_cnn.manual_seed(100 + seed)
    model.classifier = new_classifier()  # a new head for the new classes
    return model


frozen = from_pretrained(0).eval()
frozen.features.requires_grad_(False)
alone = new_classifier()
alone.load_state_dict(frozen.classifier.state_dict())
batch_x, batch_y = Tensor(x_target[:25]), Tensor(y_target[:25])
for model, inputs in ((frozen, batch_x), (alone, None)):
    opt = optim.SGD(model.parameters(), lr=0.1)  # the frozen parameters are in it too
    if inputs is None:
        with no_grad():
            inputs = frozen.features(batch_x)
    nn.CrossEntropyLoss()(model(inputs), batch_y).backward()
    opt.step()
assert all(p.grad is None for p in frozen.features.parameters()), "frozen: no gradient"
for a, b in zip(frozen.classifier.parameters(), alone.parameters()):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
trainable = sum(p.numel() for p in frozen.parameters() if p.requires_grad)
print(f"features frozen: {trainable:,} of {frozen.num_parameters():,} parameters train; one step agrees "
      "with training the classifier alone on precomputed features")

# %% [markdown]
# ## The four ways to learn digits 5-9 from 250 labelled images
#
# For each draw of the 50 labelled images per class, each option trains for the same
# number of epochs with Adam (learning rate 1e-3; in option 3 the pretrained features get
# 3e-4 through their own parameter group), and is scored on 1,000 other images of 5-9.

# %%
def train_and_score(model, optimizer, x, y, x_test, y_test, seed):
    trainer = training.Trainer(model, optimizer, batch_size=25, seed=seed, progress=False)
    trainer.fit((x, y), epochs=EPOCHS)
    return trainer.evaluate((x_test, y_test))["accuracy"]


def run_options(seed):
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.choice(np.nonzero(y_target == c)[0], 50, replace=False) for c in range(5)])
    rest = np.setdiff1d(np.arange(len(y_target)), chosen)
    test = rest[:1000]
    x, y, x_test, y_test = x_target[chosen], y_target[chosen], x_target[test], y_target[test]
    result = {}
    scratch = new_network(seed + 1)
    result["from scratch"] = train_and_score(scratch, optim.Adam(scratch.parameters(), lr=1e-3),
                                             x, y, x_test, y_test, seed)
    # 1. features only: compute the frozen features once, train a classifier on them
    base = from_pretrained(seed).eval()
    with no_grad():
        features, features_test = (base.features(Tensor(a)).numpy() for a in (x, x_test))
    head = base.classifier
    result["features only"] = train_and_score(head, optim.Adam(head.parameters(), lr=1e-3),
                                              features, y, features_test, y_test, seed)
    # 2. fine-tune the top: the first convolution stays frozen
    top = from_pretrained(seed)
    top.features[0].requires_grad_(False)
    result["fine-tune the top"] = train_and_score(top, optim.Adam(top.parameters(), lr=1e-3),
                                                  x, y, x_test, y_test, seed)
    # 3. fine-tune everything, the pretrained features more gently
    everything = from_pretrained(seed)
    groups = optim.Adam([{"params": everything.features.parameters(), "lr": 3e-4},
                         {"params": everything.classifier.parameters()}], lr=1e-3)
    assert [g["lr"] for g in groups.param_groups] == [3e-4, 1e-3]
    result["fine-tune everything"] = train_and_score(everything, groups, x, y, x_test, y_test, seed)
    assert all(p.grad is None for p in top.features[0].parameters())
    return result, scratch


results = []
for seed in range(SEEDS):
    result, scratch_model = run_options(seed)
    results.append(result)
    print(f"draw {seed}: " + ", ".join(f"{name} {acc:.3f}" for name, acc in results[-1].items()))
names = list(results[0])
mean = {name: float(np.mean([r[name] for r in results])) for name in names}
print(f"mean over {SEEDS} draws after {EPOCHS} epochs: " + ", ".join(f"{n} {a:.3f}" for n, a in mean.items()))

# %% [markdown]
# ## What the numbers say
#
# Measured over six draws of the labelled images (`--seeds 6`, five epochs each), training
# from scratch reached 0.80 on average (0.76 to 0.84), features only 0.86 (0.85 to 0.87),
# fine-tuning the top 0.85 and fine-tuning everything 0.85. Features only was ahead of
# training from scratch in every draw, by 0.026 to 0.099: the strokes and corners learned on
# 0-4 fit 5-9 too, so the new classifier starts from good features instead of random
# filters. The two fine-tuning options were ahead on average, but not in every draw (in one,
# fine-tuning the top was 0.007 behind). Between the three transfer options the differences
# were a point or less on average and their order changed from draw to draw, so no order
# among them is claimed: with a feature extractor this small and a task this close to the
# pretraining one, freezing everything loses nothing, and it is by far the cheapest (the
# features are computed once). Trained much longer, the network from scratch catches up on
# this easy task; transfer learning is worth most when labels, time or both are short.
#
# The checks (on MNIST with the default two draws): features only ahead of scratch in each
# draw by more than 0.01; each fine-tuning option ahead of scratch on average by more than
# 0.005; the three transfer options within 0.03 of each other on average.

# %%
chance = 0.2
for name in names:
    assert mean[name] > chance + 0.25, f"{name} learns the task ({mean[name]:.3f})"
if on_mnist and not args.quick:
    transfer = names[1:]
    for r in results:
        lead = r["features only"] - r["from scratch"]
        assert lead > 0.01, f"features only should be ahead of training from scratch, lead {lead:+.3f}"
    for name in ("fine-tune the top", "fine-tune everything"):
        lead = mean[name] - mean["from scratch"]
        assert lead > 0.005, f"{name} should be ahead of training from scratch on average, lead {lead:+.3f}"
    spread = max(mean[n] for n in transfer) - min(mean[n] for n in transfer)
    assert spread < 0.03, f"the three transfer options differ by {spread:.3f}"

# %% [markdown]
# ## Pictures
#
# `15_transfer.png`: the accuracy of the four options on digits 5-9 (each draw a dot, the
# mean a bar), and the first-layer filters of the pretrained network next to those of the
# network trained from scratch on the 250 images.

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, (ax, ax_a, ax_b) = plt.subplots(1, 3, figsize=(14, 4.6), gridspec_kw={"width_ratios": [1.8, 1, 1]})
positions = np.arange(len(names))
ax.bar(positions, [mean[n] for n in names], color=["tab:gray", "tab:blue", "tab:orange", "tab:green"])
for i, name in enumerate(names):
    values = [r[name] for r in results]
    ax.plot([i] * len(values), values, "ko", ms=4, label="one draw" if i == 0 else None)
    ax.text(i, max(values) + 0.008, f"mean {mean[name]:.3f}", ha="center")
low = min(min(r.values()) for r in results)
ax.set(xticks=positions, xticklabels=[n.replace(" ", "\n", 1) for n in names],
       ylim=(max(0.0, low - 0.1), 1.0), ylabel="test accuracy on digits 5-9",
       title=f"50 labelled images per class, {EPOCHS} epochs, {SEEDS} draw{'s' * (SEEDS > 1)}")
ax.legend(loc="upper left")
for axis, model, title in ((ax_a, source_model, "pretrained on digits 0-4"),
                           (ax_b, scratch_model, "trained from scratch on 5-9")):
    kernels = model.features[0].weight.numpy()[:, 0]
    grid = np.full((2 * 4 - 1, 4 * 4 - 1), np.nan)
    for k, kernel in enumerate(kernels):
        r, c = divmod(k, 4)
        grid[r * 4:r * 4 + 3, c * 4:c * 4 + 3] = kernel / np.abs(kernel).max()
    image = axis.imshow(grid, cmap="RdBu_r", vmin=-1, vmax=1)
    axis.set(title=f"first-layer 3x3 filters,\n{title}", xticks=[], yticks=[])
fig.colorbar(image, ax=[ax_a, ax_b], fraction=0.025, label="weight / max |weight| of its filter")
fig.savefig(OUT / "15_transfer.png", dpi=80, bbox_inches="tight")
plt.close(fig)
print("saved", OUT / "15_transfer.png")
