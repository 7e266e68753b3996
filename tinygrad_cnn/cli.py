"""The command line: ``tinygrad-cnn train | evaluate | summary`` (also ``python -m tinygrad_cnn``).

    tinygrad-cnn train                          LeNet-5 on the bundled 8x8 digits (offline)
    tinygrad-cnn train --model resnet20 --dataset shapes --epochs 3
    tinygrad-cnn train --dataset mnist --data-dir ../shared/data/mnist
    tinygrad-cnn evaluate --checkpoint runs/lenet5-digits/checkpoint.npz
    tinygrad-cnn summary --model resnet20
    tinygrad-cnn train --processes 2            data-parallel on 2 processes (starts mpirun)

``train`` shows progress bars, prints the test accuracy and writes to ``--output`` (default
``runs/<model>-<dataset>``): ``checkpoint.npz`` (the atomic checkpoint of the latest epoch),
``history.csv`` and ``training_curves.png``. Bad input (an unknown model, a missing or
corrupt dataset file, a checkpoint of another model) ends with one line on stderr and exit
code 2, before anything is written.

Data-parallel training: ``tinygrad-cnn train --processes N`` starts ``mpirun -n N`` on
itself (``--hostfile`` for several machines); ``mpirun -n N tinygrad-cnn train ...`` works
too. ``--batch-size`` is per process; rank 0 prints and writes the files.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import time
from pathlib import Path

import numpy as np

DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "shapes", "folder")
OPTIMIZERS = ("adam", "adamw", "sgd")
NUM_CLASSES = {"digits": 10, "mnist": 10, "fashion-mnist": 10, "cifar10": 10, "shapes": 3}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinygrad-cnn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    def data_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dataset", default="digits", choices=DATASETS,
                       help="digits (bundled, default), mnist / fashion-mnist (IDX files in --data-dir), "
                            "cifar10 (binary batches in --data-dir), shapes (synthetic), folder "
                            "(your images: --data-dir/<class>/<image>)")
        p.add_argument("--data-dir", default=None, help="folder of the dataset's files")
        p.add_argument("--download", action="store_true",
                       help="download missing MNIST/Fashion-MNIST/CIFAR-10 files (checksums verified)")
        p.add_argument("--limit", type=int, default=None, help="use at most this many training images")
        p.add_argument("--batch-size", type=int, default=32)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--backend", default=None,
                       help="CPU kernels: reference, numba or cython (default: numba when it loads)")
        p.add_argument("--device", default="cpu", help="cpu or cuda")

    train = commands.add_parser("train", help="train a model and save a checkpoint and curves")
    train.add_argument("--model", default="lenet5", help="a name from `tinygrad-cnn summary --list`")
    data_options(train)
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--lr", type=float, default=None, help="learning rate (default: 3e-3 Adam, 0.05 SGD)")
    train.add_argument("--optimizer", default="adam", choices=OPTIMIZERS)
    train.add_argument("--weight-decay", type=float, default=0.0)
    train.add_argument("--augment", action="store_true", help="random shifts/rotations (and flips) per batch")
    train.add_argument("--output", default=None, help="output folder (default runs/<model>-<dataset>)")
    train.add_argument("--resume", default=None, help="continue from this checkpoint")
    train.add_argument("--patience", type=int, default=None, help="early stopping patience (epochs)")
    train.add_argument("--tensorboard", action="store_true",
                       help="also write TensorBoard logs (tensorboardX)")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.add_argument("--processes", type=int, default=None,
                       help="train data-parallel on N MPI processes (starts mpirun; needs "
                            "pip install 'tinygrad_cnn[distributed]'); --batch-size is per process")
    train.add_argument("--hostfile", default=None,
                       help="with --processes: the MPI hostfile listing the machines to run on")

    evaluate = commands.add_parser("evaluate", help="score a checkpoint on a dataset's test split")
    evaluate.add_argument("--checkpoint", required=True)
    evaluate.add_argument("--model", default=None, help="expected model (default: the checkpoint's)")
    data_options(evaluate)
    evaluate.set_defaults(dataset=None)

    summary = commands.add_parser("summary", help="print a model's layer table")
    summary.add_argument("--model", default="lenet5")
    summary.add_argument("--input-shape", type=int, nargs="+", default=None,
                         help="C H W (default: the model's)")
    summary.add_argument("--num-classes", type=int, default=None)
    summary.add_argument("--list", action="store_true", help="list the model names")
    return parser


# ------------------------------------------------------------------ helpers
def _check_positive(**values) -> None:
    for name, value in values.items():
        if value is not None and value <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {value}")


def _setup(args: argparse.Namespace) -> None:
    """Device and kernels: ``--backend`` if given, else the compiled Numba kernels when they
    load (the readable reference kernels otherwise)."""
    from tinygrad_cnn import kernels
    from tinygrad_cnn.device import check_device

    if args.backend is not None:
        kernels.set_backend(args.backend)
    elif kernels.ENV_VARIABLE not in os.environ:
        try:
            kernels.set_backend("numba")
        except (RuntimeError, ImportError, ValueError):
            kernels.set_backend(kernels.DEFAULT_BACKEND)
    args.device = check_device(args.device)


def _build_model(name: str, num_classes: int, in_channels: int):
    """The model, given the data's classes and channels where the model's factory takes them."""
    from tinygrad_cnn import models

    key = name.lower().replace("-", "_")
    if key not in models.MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(models.list_models())}")
    factory = models.MODELS[key]
    accepted = inspect.signature(factory).parameters
    options = {}
    if "num_classes" in accepted:
        options["num_classes"] = num_classes
    if "in_channels" in accepted:
        options["in_channels"] = in_channels
    return key, factory(**options)


def _fit_images(x: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Resize (bilinear) and repeat/average channels so images match the model's (C, H, W)."""
    from tinygrad_cnn.data import resize_bilinear

    c, h, w = shape
    if x.shape[2:] != (h, w):
        x = resize_bilinear(x, h, w)
    if x.shape[1] != c:
        x = np.repeat(x, c, axis=1) if x.shape[1] == 1 else x.mean(axis=1, keepdims=True).repeat(c, axis=1)
    return np.ascontiguousarray(x, dtype=np.float32)


def load_data(args: argparse.Namespace, model_key: str, input_shape: tuple[int, int, int]):
    """``(train, test, num_classes, note)``: train/test are (x, y) arrays, or DataLoaders for
    an image folder. Raises FileNotFoundError/ValueError with the file at fault."""
    from tinygrad_cnn import data, models

    segmentation = model_key in models.SEGMENTATION_MODELS
    note = ""
    if segmentation and args.dataset != "shapes":
        raise ValueError(f"model {model_key} segments images; train it with --dataset shapes")
    if args.dataset == "digits":
        x_train, y_train, x_test, y_test = data.load_digits(seed=args.seed, image_size=28)
    elif args.dataset in ("mnist", "fashion-mnist"):
        loader = data.load_mnist if args.dataset == "mnist" else data.load_fashion_mnist
        root = args.data_dir or os.path.join("data", args.dataset)
        x_test, y_test = loader(root, "test", download=args.download)
        try:
            x_train, y_train = loader(root, "train", download=args.download)
        except FileNotFoundError:
            # only the t10k files: train on 8,000 of them and test on the other 2,000
            order = np.random.default_rng(args.seed).permutation(len(y_test))
            train_idx, test_idx = order[:8000], order[8000:]
            x_train, y_train = x_test[train_idx], y_test[train_idx]
            x_test, y_test = x_test[test_idx], y_test[test_idx]
            note = (f"note: no training files in {root}; training on {len(train_idx)} of the test-set "
                    f"images and testing on the other {len(test_idx)}")
    elif args.dataset == "cifar10":
        root = args.data_dir or os.path.join("data", "cifar10")
        x_train, y_train = data.load_cifar10(root, "train", download=args.download)
        x_test, y_test = data.load_cifar10(root, "test", download=args.download)
    elif args.dataset == "shapes":
        task = "segmentation" if segmentation else "classification"
        size, channels = input_shape[1], min(input_shape[0], 3)
        x_train, y_train = data.make_shapes(2000, size, task, seed=args.seed, channels=channels)
        x_test, y_test = data.make_shapes(500, size, task, seed=args.seed + 1, channels=channels)
        if args.limit is not None:
            x_train, y_train = x_train[: args.limit], y_train[: args.limit]
        return (x_train, y_train), (x_test, y_test), (4 if segmentation else 3), note
    else:  # folder
        if args.data_dir is None:
            raise ValueError("--dataset folder needs --data-dir (a folder with one sub-folder per class)")
        c, h, w = input_shape
        mode = "grayscale" if c == 1 else "rgb"
        augment = getattr(args, "augment", False)
        transform = data.transforms.standard_augmentation("folder") if augment else None
        train = data.flow_from_directory(args.data_dir, (h, w), mode, args.batch_size, True, args.seed,
                                         transform, validation_split=0.2, subset="training")
        test = data.flow_from_directory(args.data_dir, (h, w), mode, args.batch_size, False, args.seed,
                                        validation_split=0.2, subset="validation")
        return train, test, len(train.class_indices), note
    if args.limit is not None:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    return (x_train, y_train), (x_test, y_test), NUM_CLASSES[args.dataset], note


def _input_shape(model_key: str, dataset: str) -> tuple[int, int, int]:
    """What the model expects, with the dataset's channel count where the model allows it."""
    from tinygrad_cnn import models

    c, h, w = models.INPUT_SHAPES[model_key]
    channels = {"digits": 1, "mnist": 1, "fashion-mnist": 1, "cifar10": 3, "shapes": 1}.get(dataset, 3)
    accepted = inspect.signature(models.MODELS[model_key]).parameters
    return (channels if "in_channels" in accepted else c), h, w


def _loader(args, data, input_shape, train: bool, augment: bool = False):
    """A DataLoader over (x, y) arrays (images fitted to the model's input), or ``data`` itself."""
    from tinygrad_cnn.data import DataLoader, TensorDataset, transforms

    if isinstance(data, DataLoader):
        return data
    x, y = data
    if x.shape[1:] != input_shape:
        x = _fit_images(x, input_shape)
    if not train:
        return DataLoader(TensorDataset(x, y), max(args.batch_size, 128), device=args.device)
    transform = transforms.standard_augmentation(args.dataset) if augment else None
    return DataLoader(TensorDataset(x, y), args.batch_size, shuffle=True, seed=args.seed, transform=transform,
                      device=args.device)


# ------------------------------------------------------------------ commands
def _without_options(argv: list[str], names: tuple[str, ...]) -> list[str]:
    """``argv`` less the options ``names`` and their values (``--name V`` or ``--name=V``)."""
    kept, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token in names:
            skip = True
        elif not token.startswith(tuple(f"{name}=" for name in names)):
            kept.append(token)
    return kept


def _join_processes(args: argparse.Namespace):
    """Under mpirun: join the MPI world (before Numba loads, so its threads get this process's
    share of the cores); returns the world, or None for a plain single-process run."""
    from tinygrad_cnn import distributed

    if not distributed.launched_by_mpi():
        return None
    world = distributed.init()
    if args.processes is not None and args.processes != world.size:
        raise ValueError(f"--processes {args.processes} under an mpirun that started {world.size}; "
                         "leave --processes out when you start mpirun yourself")
    return world


def train(args: argparse.Namespace) -> float:
    """Train, print the test accuracy and write checkpoint, history and curves; returns the accuracy."""
    import tinygrad_cnn as tc
    from tinygrad_cnn import models, optim, training

    _check_positive(epochs=args.epochs, batch_size=args.batch_size, limit=args.limit, lr=args.lr,
                    patience=args.patience)
    world = _join_processes(args)
    main_process = world is None or world.rank == 0
    show = print if main_process else (lambda *_, **__: None)  # rank 0 speaks for all
    _setup(args)
    tc.manual_seed(args.seed)
    key = args.model.lower().replace("-", "_")
    if key not in models.MODELS:
        raise ValueError(f"unknown model {args.model!r}; available: {', '.join(models.list_models())}")
    input_shape = _input_shape(key, args.dataset)
    train_data, test_data, num_classes, note = load_data(args, key, input_shape)
    if note:
        show(note)
    key, model = _build_model(key, num_classes, input_shape[0])
    train_loader = _loader(args, train_data, input_shape, train=True, augment=args.augment)
    test_loader = _loader(args, test_data, input_shape, train=False)
    lr = args.lr if args.lr is not None else (0.05 if args.optimizer == "sgd" else 3e-3)
    if args.optimizer == "sgd":
        optimizer = optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=args.weight_decay)
    else:
        cls = optim.Adam if args.optimizer == "adam" else optim.AdamW
        optimizer = cls(model.parameters(), lr=lr, weight_decay=args.weight_decay)
    scheduler = optim.CosineAnnealingLR(optimizer, T_max=args.epochs)
    segmentation = key in models.SEGMENTATION_MODELS
    info = {"model": key, "dataset": args.dataset, "num_classes": num_classes,
            "input_shape": list(input_shape)}
    output = Path(args.output or os.path.join("runs", f"{key}-{args.dataset}"))
    checkpoint_path = output / "checkpoint.npz"
    monitor = "val_iou" if segmentation else "val_accuracy"
    # the checkpoint of the latest epoch (for --resume and evaluate); the test split is never used to
    # pick an epoch, so the accuracy printed at the end is an honest test score
    callbacks = [training.ModelCheckpoint(checkpoint_path, monitor=monitor, info=info),
                 training.CSVLogger(output / "history.csv", append=args.resume is not None)]
    if args.patience is not None:
        callbacks.append(training.EarlyStopping(monitor, patience=args.patience, restore_best_weights=True))
    if args.tensorboard:
        callbacks.append(training.TensorBoard(output / "tensorboard"))
    metrics = ("accuracy", "iou") if segmentation else ("accuracy",)
    trainer = training.Trainer(model, optimizer, metrics=metrics, callbacks=callbacks, scheduler=scheduler,
                               progress=not args.no_progress, device=args.device, info=info,
                               distributed=world is not None)
    initial_epoch = trainer.resume(args.resume) if args.resume else 0
    if initial_epoch >= args.epochs:
        raise ValueError(f"--resume: the checkpoint has already trained {initial_epoch} epochs; "
                         f"ask for more with --epochs (now {args.epochs})")
    processes = f" per process x {world.size} processes" if world is not None else ""
    show(f"training {key} ({model.num_parameters():,} parameters) on {args.dataset}: "
         f"{len(train_loader.dataset)} training and {len(test_loader.dataset)} test images, "
         f"{args.epochs} epochs, {args.optimizer} lr {lr:g}, batch {args.batch_size}{processes}")
    start = time.perf_counter()
    history = trainer.fit(train_loader, args.epochs, test_loader, initial_epoch=initial_epoch)
    elapsed = time.perf_counter() - start
    scores = trainer.evaluate(test_loader)
    if main_process:
        history.plot(output / "training_curves.png", title=f"{key} on {args.dataset}")
    accuracy = scores["accuracy"]
    extra = f", mean IoU {scores['iou']:.4f}" if "iou" in scores else ""
    show(f"test accuracy {accuracy:.4f}{extra} on {len(test_loader.dataset)} images "
         f"({elapsed:.1f} s training)")
    show(f"wrote {checkpoint_path}, {output / 'history.csv'}, {output / 'training_curves.png'}")
    return accuracy


def evaluate(args: argparse.Namespace) -> dict[str, float]:
    """Score a checkpoint (its model is rebuilt from the checkpoint's header)."""
    from tinygrad_cnn import models, training

    _check_positive(batch_size=args.batch_size, limit=args.limit)
    _setup(args)
    meta, _, _ = training.read_checkpoint(args.checkpoint)
    info = meta.get("info", {})
    if "model" not in info:
        raise ValueError(f"{args.checkpoint} does not say which model it holds (no 'model' in its header)")
    if args.model is not None and args.model.lower().replace("-", "_") != info["model"]:
        raise ValueError(f"{args.checkpoint} holds a {info['model']} model, not {args.model}")
    args.dataset = args.dataset or info.get("dataset", "digits")
    input_shape = tuple(info.get("input_shape") or models.INPUT_SHAPES[info["model"]])
    key, model = _build_model(info["model"], int(info.get("num_classes", 10)), input_shape[0])
    training.load_checkpoint(args.checkpoint, model, restore_rng=False)
    _, test_data, _, _ = load_data(args, key, input_shape)
    test_loader = _loader(args, test_data, input_shape, train=False)
    metrics = ("accuracy", "iou") if key in models.SEGMENTATION_MODELS else ("accuracy",)
    trainer = training.Trainer(model, metrics=metrics, progress=False, device=args.device)
    scores = trainer.evaluate(test_loader)
    shown = "  ".join(f"{k} {v:.4f}" for k, v in scores.items())
    print(f"{key} on {args.dataset} ({len(test_loader.dataset)} images): {shown}")
    return scores


def show_summary(args: argparse.Namespace) -> None:
    from tinygrad_cnn import models
    from tinygrad_cnn.summary import summary

    if args.list:
        for name in models.list_models():
            print(f"{name:18s} input {models.INPUT_SHAPES[name]}")
        return
    key = args.model.lower().replace("-", "_")
    options = {} if args.num_classes is None else {"num_classes": args.num_classes}
    model = models.get_model(key, **options)
    shape = tuple(args.input_shape) if args.input_shape else models.INPUT_SHAPES[key]
    summary(model, shape)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (0, or 2 after a one-line error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse already printed its message
        return int(exit_.code or 0)
    try:
        if args.command == "train" and args.processes is not None and not _launched_by_mpi():
            from tinygrad_cnn.distributed.launch import launch

            _check_positive(processes=args.processes)
            given = list(sys.argv[1:] if argv is None else argv)
            rest = _without_options(given, ("--processes", "--hostfile"))
            return launch(args.processes, rest, args.hostfile)
        if args.command == "train":
            train(args)
        elif args.command == "evaluate":
            evaluate(args)
        else:
            show_summary(args)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError, OSError, ImportError,
            FloatingPointError) as error:
        print(f"tinygrad-cnn: error{_rank_of()}: {error}", file=sys.stderr)
        _stop_other_processes(2)
        return 2
    except KeyboardInterrupt:
        print("tinygrad-cnn: interrupted", file=sys.stderr)
        _stop_other_processes(130)
        return 130
    return 0


def _launched_by_mpi() -> bool:
    from tinygrad_cnn.distributed import launched_by_mpi

    return launched_by_mpi()


def _rank_of() -> str:
    """`` (rank r of W)`` in a multi-process run, else nothing."""
    from tinygrad_cnn import distributed

    if distributed.is_initialized() and distributed.get_world_size() > 1:
        return f" (rank {distributed.get_rank()} of {distributed.get_world_size()})"
    return ""


def _stop_other_processes(code: int) -> None:
    """A process that stops must stop the others, which would wait for it for ever."""
    from tinygrad_cnn import distributed

    if distributed.is_initialized():
        distributed.abort(code)
