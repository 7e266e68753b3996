"""``tinygrad_cnn.data``: datasets that work offline, mini-batch loading and augmentation."""

from tinygrad_cnn.data import transforms
from tinygrad_cnn.data.datasets import (
    CIFAR10_CLASSES,
    FASHION_MNIST_CLASSES,
    SHAPE_CLASSES,
    download_file,
    load_cifar10,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    make_shapes,
    md5sum,
    read_idx,
    resize_bilinear,
)
from tinygrad_cnn.data.image_folder import ImageFolder, flow_from_directory
from tinygrad_cnn.data.loader import DataLoader, Dataset, Subset, TensorDataset, random_split
from tinygrad_cnn.data.signals import (
    SIGNAL_CLASSES,
    event_targets,
    event_waveform,
    make_signal_events,
    match_events,
    sliding_windows,
    threshold_runs,
)

__all__ = [
    "load_digits", "load_mnist", "load_fashion_mnist", "load_cifar10", "make_shapes", "read_idx",
    "resize_bilinear", "download_file", "md5sum", "CIFAR10_CLASSES", "FASHION_MNIST_CLASSES",
    "SHAPE_CLASSES", "Dataset", "TensorDataset", "Subset", "random_split", "DataLoader",
    "ImageFolder", "flow_from_directory", "transforms",
]
__all__ += [
    "SIGNAL_CLASSES", "event_waveform", "make_signal_events", "event_targets", "sliding_windows",
    "threshold_runs", "match_events",
]
