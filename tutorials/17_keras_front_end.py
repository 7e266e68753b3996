# %% [markdown]
# # 17. The course's Keras code, run on tinygrad_cnn
#
# The course writes its networks in Keras. The same code runs here with one line changed,
# the import:
#
# ```python
# from tensorflow.keras import layers, models        # the course
# from tinygrad_cnn.keras import layers, models      # here
# ```
#
# `tinygrad_cnn.keras` is a thin layer over the engine of the other tutorials, not a second
# framework: each Keras layer wraps one of our modules (`layers.Conv2D` holds an `nn.Conv2d`,
# `layers.Dense` an `nn.Linear`), `fit` runs the same autograd, `DataLoader` and optimizers,
# and the callbacks are `tinygrad_cnn.training`'s. What it adds are Keras's conventions, which
# differ from PyTorch's (and so from the rest of this library) in a few places that matter:
#
# | | Keras | PyTorch / tinygrad_cnn.nn |
# | --- | --- | --- |
# | images | channels last, (N, H, W, C) | channels first, (N, C, H, W) |
# | conv kernel | (kh, kw, C_in, C_out) | (C_out, C_in, kh, kw) |
# | dense kernel | (in, out), y = x W + b | (out, in), y = x Wᵀ + b |
# | initial weights | Glorot uniform, zero biases | U(±1/√fan_in) for both |
# | `'same'` padding | any stride: output ⌈n / s⌉ | stride 1 only |
# | output layer | softmax, and the loss takes probabilities | logits, and the loss applies log-softmax |
#
# This tutorial runs the course's MNIST network in Keras style, looks at its activations with
# the course's activation model, and then builds the same network in tinygrad_cnn's own API,
# weight for weight, to check that both compute the same thing.

# %%
import argparse
import sys
from pathlib import Path

import numpy as np

import tinygrad_cnn
from tinygrad_cnn import Tensor, data, nn, viz
from tinygrad_cnn.keras import layers, models

parser = argparse.ArgumentParser(description="Tutorial 17: the course's Keras code on tinygrad_cnn")
parser.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
parser.add_argument("--out", default=None, help="folder for the pictures (default: tutorials/out)")
parser.add_argument("--mnist", default=None,
                    help="folder with MNIST's IDX files (default: the bundled digits)")
# the Jupyter kernel's own flags (-f kernel-<id>.json) are in sys.argv: parse_known_args skips them.
args = parser.parse_known_args()[0] if "ipykernel" in sys.modules else parser.parse_args()
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(args.out) if args.out else HERE / "out"
OUT.mkdir(parents=True, exist_ok=True)
tinygrad_cnn.manual_seed(0)

if args.mnist:  # the test files of MNIST: 8,000 to train on, 2,000 to test
    images, labels = data.load_mnist(args.mnist, "test")
    x_train, y_train, x_test, y_test = images[:8000], labels[:8000], images[8000:], labels[8000:]
    source = "MNIST"
else:  # scikit-learn's 8x8 digits, resized to MNIST's 28x28 (offline)
    x_train, y_train, x_test, y_test = data.load_digits(image_size=28)
    source = "the bundled digits"
if args.quick:
    x_train, y_train, x_test, y_test = x_train[:800], y_train[:800], x_test[:200], y_test[:200]
# Keras's layout: channels last
train_images, test_images = x_train.transpose(0, 2, 3, 1), x_test.transpose(0, 2, 3, 1)
print(f"{source}: {len(train_images)} training and {len(test_images)} test images of shape "
      f"{train_images.shape[1:]} (H, W, C)")

# %% [markdown]
# ## The course's network, as the slides write it
#
# Three 3x3 convolutions with ReLU, the first two followed by 2x2 max pooling, then a dense
# classifier. A convolution's parameters are kh kw C_in C_out weights plus C_out biases,
# whatever the image size: 3·3·1·32 + 32 = 320, 3·3·32·64 + 64 = 18,496, 3·3·64·64 + 64 = 36,928.
# The last feature maps are 3x3x64 = 576 numbers, so the first dense layer has
# 576·64 + 64 = 36,928 parameters and the classifier 64·10 + 10 = 650: 93,322 in all.

# %%
model = models.Sequential()
model.add(layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Conv2D(64, (3, 3), activation="relu"))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Conv2D(64, (3, 3), activation="relu"))
model.add(layers.Flatten())
model.add(layers.Dense(64, activation="relu"))
model.add(layers.Dense(10, activation="softmax"))
model.summary()

assert [layer.count_params() for layer in model.layers] == [320, 0, 18496, 0, 36928, 0, 36928, 650]
assert model.count_params() == 93_322
assert model.layers[4].output.shape == (None, 3, 3, 64)

# %% [markdown]
# ## compile, fit, evaluate
#
# RMSprop and the sparse categorical cross-entropy (integer labels; the network outputs
# probabilities through its softmax), as the course compiles it. `fit` returns a `History`
# with Keras's keys, `loss`, `accuracy`, `val_loss`, `val_accuracy`, one value per epoch.

# %%
model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
epochs = 2 if args.quick else 3 if args.mnist else 8
history = model.fit(train_images, y_train, epochs=epochs, batch_size=32,
                    validation_data=(test_images, y_test), verbose=2)
test_loss, test_accuracy = model.evaluate(test_images, y_test, verbose=0)
print(f"test accuracy after {epochs} epoch(s): {test_accuracy:.2%}")
history.plot(OUT / "17_training_curves.png", title=f"the course's network on {source} (tinygrad_cnn.keras)")
assert list(history.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
assert test_accuracy > (0.5 if args.quick else 0.98 if args.mnist else 0.95)

# %% [markdown]
# ## The activation model
#
# The course looks inside the network with a second model that shares the first one's layers
# and returns every layer's output: `Model(inputs=model.input, outputs=[layer.output for layer
# in model.layers])`. Its `predict` gives one array per layer, channels last, as in Keras:
# here the 32 maps of the first convolution for one test digit.

# %%
activation_model = models.Model(inputs=model.input, outputs=[layer.output for layer in model.layers])
maps = activation_model.predict(test_images[:1], verbose=0)
for layer, activation in zip(model.layers, maps):
    print(f"{layer.name:16s} {activation.shape}")
assert [m.shape for m in maps] == [(1, 26, 26, 32), (1, 13, 13, 32), (1, 11, 11, 64), (1, 5, 5, 64),
                                  (1, 3, 3, 64), (1, 576), (1, 64), (1, 10)]
np.testing.assert_allclose(maps[-1], model.predict(test_images[:1], verbose=0), rtol=1e-6)
viz.activation_maps(maps[0][0].transpose(2, 0, 1), OUT / "17_activations.png",
                    title=f"conv2d: the 32 feature maps of one test digit (a {y_test[0]}); "
                          "bright = active, dark = silent")

# %% [markdown]
# ## The same network in tinygrad_cnn's own API
#
# Written with `tinygrad_cnn.nn`, the network takes channels-first images and holds its
# weights in PyTorch's layouts. We copy the trained Keras weights over, converting each
# layout, and check that the two give the same probabilities:
#
# | Keras | tinygrad_cnn.nn |
# | --- | --- |
# | `Conv2D(32, (3, 3), activation='relu', input_shape=(28, 28, 1))` | `nn.Conv2d(1, 32, 3), nn.ReLU()` |
# | `MaxPooling2D((2, 2))` | `nn.MaxPool2d(2)` |
# | `Flatten()` | `nn.Flatten()` |
# | `Dense(64, activation='relu')` | `nn.Linear(576, 64), nn.ReLU()` |
# | `Dense(10, activation='softmax')` | `nn.Linear(64, 10), nn.Softmax(dim=1)` |
#
# One conversion is not just a transpose. Keras flattens the (3, 3, 64) maps in the order
# height, width, channel; `nn.Flatten` flattens (64, 3, 3) in the order channel, height, width.
# So the 576 rows of the first dense kernel must be reordered, or the dense layer would
# read every feature from the wrong place.

# %%
own = nn.Sequential(
    nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(64, 64, 3), nn.ReLU(),
    nn.Flatten(),
    nn.Linear(576, 64), nn.ReLU(),
    nn.Linear(64, 10), nn.Softmax(dim=1),
)
convs, denses = [own[0], own[3], own[6]], [own[9], own[11]]
keras_convs = [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]
keras_denses = [layer for layer in model.layers if isinstance(layer, layers.Dense)]
for conv, keras_conv in zip(convs, keras_convs):
    kernel, bias = keras_conv.get_weights()  # (kh, kw, C_in, C_out), (C_out,)
    conv.weight.data[...] = kernel.transpose(3, 2, 0, 1)  # -> (C_out, C_in, kh, kw)
    conv.bias.data[...] = bias
kernel, bias = keras_denses[0].get_weights()  # (576, 64), rows in (h, w, c) order
denses[0].weight.data[...] = kernel.reshape(3, 3, 64, 64).transpose(2, 0, 1, 3).reshape(576, 64).T
denses[0].bias.data[...] = bias
kernel, bias = keras_denses[1].get_weights()
denses[1].weight.data[...] = kernel.T
denses[1].bias.data[...] = bias

own.eval()
with tinygrad_cnn.no_grad():
    own_probabilities = own(Tensor(x_test[:64])).numpy()  # channels first
keras_probabilities = model.predict(test_images[:64], verbose=0)  # channels last
difference = np.abs(own_probabilities - keras_probabilities).max()
print(f"largest difference between the two networks' probabilities: {difference:.1e}")
np.testing.assert_allclose(own_probabilities, keras_probabilities, rtol=1e-4, atol=1e-6)
assert own.num_parameters() == model.count_params() == 93_322
table = tinygrad_cnn.summary(own, (1, 28, 28), print_summary=False)
assert table.total_params == 93_322
print(table)

# %% [markdown]
# Reading the Keras layer shows the same modules underneath: `model.layers[0].module` is an
# `nn.Conv2d` whose `weight` tensor is the Keras kernel seen in PyTorch's layout.

# %%
first = model.layers[0]
print(type(first.module).__name__, first.module.weight.shape, "<->", first.get_weights()[0].shape)
np.testing.assert_array_equal(first.module.weight.numpy(), first.get_weights()[0].transpose(3, 2, 0, 1))

# %% [markdown]
# ## Step into the kernels
#
# The compiled Numba kernels are fast; the reference kernels are the formulas of the course
# written as readable loops (`kernels/reference/conv.py`). Switch to them and the Keras model
# computes the same numbers, now with code a debugger can step through line by line.

# %%
fast = model.predict(test_images[:16], verbose=0)
with tinygrad_cnn.use_backend("reference"):
    readable = model.predict(test_images[:16], verbose=0)
print(f"numba and reference kernels differ by at most {np.abs(fast - readable).max():.1e}")
np.testing.assert_allclose(readable, fast, rtol=1e-4, atol=1e-6)
