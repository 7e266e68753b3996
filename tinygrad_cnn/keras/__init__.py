"""``tinygrad_cnn.keras``: the course's Keras code on tinygrad_cnn's engine.

    from tinygrad_cnn.keras import layers, models, callbacks, optimizers

    model = models.Sequential()
    model.add(layers.Conv2D(32, (3, 3), activation='relu', input_shape=(28, 28, 1)))
    model.add(layers.MaxPooling2D((2, 2)))
    model.add(layers.Flatten())
    model.add(layers.Dense(10, activation='softmax'))
    model.compile(optimizer='rmsprop', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
    model.fit(train_images, train_labels, epochs=5, batch_size=64)

A thin layer, not a second framework: each Keras layer wraps a tinygrad_cnn module or
functional op (``layers.Conv2D`` -> ``nn.Conv2d`` / ``F.conv2d``), ``fit`` runs the same autograd,
DataLoader and ``optim`` optimizers, and the callbacks are ``tinygrad_cnn.training``'s. Keras's
conventions are kept where they differ from PyTorch's: channels-last images (N, H, W, C),
weights in Keras's layout (kernel (kh, kw, in, out)), Glorot-uniform kernels and zero biases,
TensorFlow's 'same' padding, probabilities (not logits) into the losses, and Keras's layer
names, so ``summary()`` and ``count_params()`` read as in the course. Switch the kernels to the
readable reference loops (``tinygrad_cnn.set_backend("reference")``) and step into any layer.
"""

from tinygrad_cnn.keras import (
    activations,
    backend,
    callbacks,
    initializers,
    layers,
    losses,
    metrics,
    models,
    optimizers,
    preprocessing,
    utils,
)
from tinygrad_cnn.keras.layers import Input
from tinygrad_cnn.keras.model import Model, Sequential

__all__ = [
    "activations", "backend", "callbacks", "initializers", "layers", "losses", "metrics", "models",
    "optimizers", "preprocessing", "utils", "Input", "Model", "Sequential",
]
