"""The command line: tinygrad-cnn train | evaluate | summary (also python -m tinygrad_cnn).

    tinygrad-cnn train                          LeNet-5 on the bundled 8x8 digits (offline)
    tinygrad-cnn train --model resnet20 --dataset shapes --epochs 3
    tinygrad-cnn train --dataset mnist --data-dir ../shared/data/mnist
    tinygrad-cnn train --live                   ... and watch it learn at http://127.0.0.1:8765/
    tinygrad-cnn evaluate --checkpoint runs/lenet5-digits/checkpoint.npz
    tinygrad-cnn summary --model resnet20
    tinygrad-cnn train --processes 2            data-parallel on 2 processes (starts mpirun)

train holds out a validation split of the training images (--val-split, default 0.1) for the
per-epoch val_* numbers and early stopping, and scores the test images only once, at the end.
It shows progress bars and writes to --output (default runs/<model>-<dataset>):
checkpoint.npz (the atomic checkpoint of the latest epoch), history.csv (training and
validation metrics per epoch), scores.csv (the final model on the validation and test
images) and training_curves.png. The first run compiles the Numba kernels for this machine
(typically 10-20 s, once). Bad input (an unknown model, a missing or corrupt dataset
file, a checkpoint of another model) ends with one line on stderr and exit code 2, before
anything is written. Run "tinygrad-cnn train --help" for every option and its default.

Data-parallel training: "tinygrad-cnn train --processes N" starts "mpirun -n N" on itself
(--hostfile for several machines); "mpirun -n N tinygrad-cnn train ..." works too.
--batch-size is per process; rank 0 prints and writes the files.

Longer than 500 lines: every option is parsed, checked and explained here (one place per
command, so a learner reads what "train" does top to bottom); the work itself is the
Trainer's and the datasets'.
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
    description = (__doc__ or "").split("\n\nLonger than")[0]  # the file's note is not the command's
    parser = argparse.ArgumentParser(prog="tinygrad-cnn", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    def data_options(p: argparse.ArgumentParser, images: str = "training") -> None:
        p.add_argument("--dataset", default="digits", choices=DATASETS,
                       help="digits (bundled, default), mnist / fashion-mnist (IDX files in --data-dir), "
                            "cifar10 (binary batches in --data-dir), shapes (synthetic), folder "
                            "(your images: --data-dir/<class>/<image>)")
        p.add_argument("--data-dir", default=None, help="folder of the dataset's files")
        p.add_argument("--download", action="store_true",
                       help="download missing MNIST/Fashion-MNIST/CIFAR-10 files (checksums verified)")
        p.add_argument("--limit", type=int, default=None,
                       help=f"use at most this many {images} images (default: all"
                            + ("; --resume: the checkpoint's)" if images == "training" else ")"))
        p.add_argument("--batch-size", type=int, default=32, help="images per batch (default: %(default)s)")
        p.add_argument("--seed", type=int, default=None,
                       help="seed of the weights, the shuffling and the splits (default: 0; evaluate and "
                            "--resume take the checkpoint's, whose splits keep its test images apart)")
        p.add_argument("--backend", default=None,
                       help="CPU kernels: reference, numba or cython (default: numba when it loads)")
        p.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")

    train = commands.add_parser("train", help="train a model and save a checkpoint and curves",
                                description="Train a model; the test images are scored once, at the end.")
    train.add_argument("--model", default="lenet5",
                       help="a name from 'tinygrad-cnn summary --list' (default: %(default)s)")
    data_options(train)
    train.add_argument("--val-split", type=float, default=None,
                       help="fraction of the training images held out for validation: the val_* numbers "
                            "of every epoch and --patience use them, never the test images "
                            "(default: 0.1, --resume: the checkpoint's; 0: no validation)")
    train.add_argument("--epochs", type=int, default=10, help="epochs to train (default: %(default)s)")
    train.add_argument("--lr", type=float, default=None, help="learning rate (default: 3e-3 Adam, 0.05 SGD)")
    train.add_argument("--optimizer", default="adam", choices=OPTIMIZERS, help="(default: %(default)s)")
    train.add_argument("--weight-decay", type=float, default=0.0,
                       help="L2 penalty on the weights (decoupled for adamw) (default: %(default)s)")
    train.add_argument("--augment", action="store_true", help="random shifts/rotations (and flips) per batch")
    train.add_argument("--output", default=None, help="output folder (default runs/<model>-<dataset>)")
    train.add_argument("--resume", default=None, help="continue from this checkpoint")
    train.add_argument("--patience", type=int, default=None,
                       help="stop when val_accuracy has not improved for this many epochs, and keep the best "
                            "epoch's weights (default: train every epoch)")
    train.add_argument("--tensorboard", action="store_true",
                       help="also write TensorBoard logs (tensorboardX)")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.add_argument("--live", action="store_true",
                       help="watch the network learn in the browser (pip install 'tinygrad_cnn[live]')")
    train.add_argument("--port", type=int, default=8765, help="--live: the port (0: any free one)")
    train.add_argument("--host", default="127.0.0.1",
                       help="--live: the address to serve on (default: this computer only)")
    train.add_argument("--live-linger", type=float, default=None, metavar="SECONDS",
                       help="--live: keep serving the final state this long after training "
                            "(default: until Ctrl+C)")
    train.add_argument("--processes", type=int, default=None,
                       help="train data-parallel on N MPI processes (starts mpirun; needs "
                            "pip install 'tinygrad_cnn[distributed]'); --batch-size is per process")
    train.add_argument("--hostfile", default=None,
                       help="with --processes: the MPI hostfile listing the machines to run on")

    evaluate = commands.add_parser("evaluate", help="score a checkpoint on a dataset's test split")
    evaluate.add_argument("--checkpoint", required=True, help="a checkpoint.npz written by train")
    evaluate.add_argument("--model", default=None, help="expected model (default: the checkpoint's)")
    data_options(evaluate, images="test")
    evaluate.set_defaults(dataset=None)

    summary = commands.add_parser("summary", help="print a model's layer table")
    summary.add_argument("--model", default="lenet5", help="(default: %(default)s)")
    summary.add_argument("--input-shape", type=int, nargs="+", default=None,
                         help="C H W (default: the model's)")
    summary.add_argument("--num-classes", type=int, default=None, help="(default: the model's)")
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


def _live_view(args: argparse.Namespace, num_classes: int, trainer):
    """With ``--live``: the page (its address printed), one of ``trainer``'s callbacks."""
    if not args.live:
        return None
    from tinygrad_cnn import data
    from tinygrad_cnn.live import LiveView

    names = {"fashion-mnist": data.FASHION_MNIST_CLASSES, "cifar10": data.CIFAR10_CLASSES,
             "shapes": data.SHAPE_CLASSES}.get(args.dataset)
    view = LiveView(port=args.port, host=args.host,
                    class_names=names if names is not None and len(names) == num_classes else None)
    view.set_trainer(trainer)
    trainer.callbacks.append(view)
    return view


def _linger(view, seconds: float | None) -> None:
    """Keep the page's final state served after training: ``seconds``, or until Ctrl+C."""
    until = "Ctrl+C" if seconds is None else f"{seconds:g} s have passed (or Ctrl+C)"
    try:  # Ctrl+C from the moment the line is printed ends the command normally
        print(f"live view: training is over; {view.url} shows the final state until {until}", flush=True)
        view.keep_serving(seconds)
    except KeyboardInterrupt:
        pass


def _hold_out(args: argparse.Namespace, data):
    """``(train, validation)``: the last ``--val-split`` of the training images held out
    (``training.split_validation``); an image folder's training loader becomes two loaders."""
    from tinygrad_cnn.data import DataLoader
    from tinygrad_cnn.training import split_validation

    if not isinstance(data, DataLoader):
        return split_validation(data, args.val_split)
    train, validation = split_validation(data.dataset, args.val_split)
    train_loader = DataLoader(train, data.batch_size, shuffle=True, seed=args.seed, transform=data.transform)
    return train_loader, DataLoader(validation, data.batch_size)


def _limited(data, limit: int | None):
    """At most ``limit`` images of (x, y) arrays or of a DataLoader's dataset."""
    from tinygrad_cnn.data import DataLoader, Subset

    if limit is None or len(data[0] if isinstance(data, tuple) else data.dataset) <= limit:
        return data
    if isinstance(data, DataLoader):
        return DataLoader(Subset(data.dataset, range(limit)), data.batch_size)
    return tuple(a[:limit] for a in data)


def _write_scores(path: Path, rows: list[tuple[str, int, dict[str, float]]]) -> None:
    """scores.csv: one row per split (validation, test) of the final model."""
    import csv

    keys = sorted({k for _, _, scores in rows for k in scores})
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["split", "images", *keys])
        for split, images, scores in rows:
            writer.writerow([split, images, *(f"{scores[k]:.6g}" if k in scores else "" for k in keys)])


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
    if args.live:
        from tinygrad_cnn.live import check_dependencies

        check_dependencies()  # before any work: the install command, in one line
        if args.live_linger is not None and args.live_linger < 0:
            raise ValueError(f"--live-linger must be >= 0 seconds, got {args.live_linger}")
    resumed = _resumed_info(args) if args.resume else {}
    _take_from_checkpoint(args, resumed, "seed", 0, "--resume")
    _take_from_checkpoint(args, resumed, "val-split", 0.1, "--resume")
    _take_from_checkpoint(args, resumed, "limit", None, "--resume")
    if not 0.0 <= args.val_split < 1.0:
        raise ValueError(f"--val-split must be a fraction in [0, 1), got {args.val_split}")
    if args.patience is not None and not args.val_split:
        raise ValueError("--patience stops on the validation accuracy: it needs --val-split > 0")
    if args.hostfile is not None and args.processes is None:
        raise ValueError(f"--hostfile {args.hostfile} lists machines for --processes N, which is not given")
    if args.output is not None and os.path.exists(args.output) and not os.path.isdir(args.output):
        raise ValueError(f"--output {args.output} is a file; it must be a folder (new or existing)")
    _setup(args)
    tc.manual_seed(args.seed)
    key = args.model.lower().replace("-", "_")
    if key not in models.MODELS:
        raise ValueError(f"unknown model {args.model!r}; available: {', '.join(models.list_models())}")
    for what, mine in (("model", key), ("dataset", args.dataset)):
        if resumed.get(what) not in (None, mine):
            raise ValueError(f"--resume: {args.resume} holds a {resumed[what]} run, not --{what} {mine}")
    input_shape = _input_shape(key, args.dataset)
    train_data, test_data, num_classes, note = load_data(args, key, input_shape)
    if note:
        show(note)
    key, model = _build_model(key, num_classes, input_shape[0])
    val_data = None
    if args.val_split:  # held out of the training images: the test images are scored once, at the end
        train_data, val_data = _hold_out(args, train_data)
    train_loader = _loader(args, train_data, input_shape, train=True, augment=args.augment)
    val_loader = _loader(args, val_data, input_shape, train=False) if val_data is not None else None
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
            "input_shape": list(input_shape), "seed": args.seed, "val_split": args.val_split,
            "limit": args.limit}
    output = Path(args.output or os.path.join("runs", f"{key}-{args.dataset}"))
    checkpoint_path = output / "checkpoint.npz"
    monitor = "val_iou" if segmentation else "val_accuracy"
    # the checkpoint of the latest epoch (for --resume and evaluate); only the validation split picks an
    # epoch (--patience), so the test accuracy printed at the end is an honest score
    callbacks = [training.ModelCheckpoint(checkpoint_path, monitor=monitor, info=info),
                 training.CSVLogger(output / "history.csv", append=args.resume is not None)]
    stopper = None
    if args.patience is not None:  # EarlyStopping tolerates `patience` epochs and stops on the next
        stopper = training.EarlyStopping(monitor, patience=args.patience - 1, restore_best_weights=True)
        callbacks.append(stopper)
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
    if args.resume:  # the cosine schedule runs to the new --epochs, from where the checkpoint was
        for group, rate in zip(optimizer.param_groups, scheduler.get_lr()):
            group["lr"] = rate
        show(f"resuming after epoch {initial_epoch} of {args.epochs}: the cosine learning-rate schedule "
             f"ends at epoch {args.epochs}, lr now {optimizer.param_groups[0]['lr']:.3g}")
    held_out = "no validation images, "
    if val_loader is not None:
        held_out = (f"{len(val_loader.dataset)} validation images (--val-split {args.val_split:g} of the "
                    f"training images: the val_* numbers), ")
    view = _live_view(args, num_classes, trainer) if main_process else None
    processes = f" per process x {world.size} processes" if world is not None else ""
    show(f"training {key} ({model.num_parameters():,} parameters) on {args.dataset}: "
         f"{len(train_loader.dataset)} training images, {held_out}{len(test_loader.dataset)} test images "
         f"(scored once, at the end); {args.epochs} epochs, {args.optimizer} lr {lr:g}, "
         f"batch {args.batch_size}{processes}")
    start = time.perf_counter()
    try:
        history = trainer.fit(train_loader, args.epochs, val_loader, initial_epoch=initial_epoch)
    except BaseException:
        if view is not None:
            view.close()
        raise
    elapsed = time.perf_counter() - start - trainer.compile_seconds
    if stopper is not None and stopper.stopped_epoch is not None and stopper.best_epoch is not None:
        # the weights scored below are the best epoch's: the checkpoint keeps those, not the last epoch's
        epochs = "1 epoch" if args.patience == 1 else f"{args.patience} epochs"
        show(f"stopped early after epoch {stopper.stopped_epoch + 1}: {monitor} did not improve for "
             f"{epochs}; kept the weights of epoch {stopper.best_epoch + 1} ({monitor} "
             f"{stopper.best:.4f}), also in {checkpoint_path}")
        if main_process:
            trainer.save_checkpoint(checkpoint_path, epoch=stopper.stopped_epoch + 1, info=info)
    rows = [("validation", len(val_loader.dataset), trainer.evaluate(val_loader))] if val_loader else []
    scores = trainer.evaluate(test_loader)
    rows.append(("test", len(test_loader.dataset), scores))
    if main_process:
        _write_scores(output / "scores.csv", rows)
        history.plot(output / "training_curves.png", title=f"{key} on {args.dataset} (validation: held-out "
                                                            f"training images)")
    accuracy = scores["accuracy"]
    extra = f", mean IoU {scores['iou']:.4f}" if "iou" in scores else ""
    if val_loader is not None:
        show(f"validation accuracy {rows[0][2]['accuracy']:.4f} on {len(val_loader.dataset)} held-out "
             f"training images")
    show(f"test accuracy {accuracy:.4f}{extra} on {len(test_loader.dataset)} images "
         f"({elapsed:.1f} s training)")
    show(f"wrote {checkpoint_path}, {output / 'history.csv'} (per epoch: training and val_* validation "
         f"metrics), {output / 'scores.csv'} (final validation and test scores), "
         f"{output / 'training_curves.png'}")
    if view is not None:
        _linger(view, args.live_linger)
        view.close()
    return accuracy


def _resumed_info(args: argparse.Namespace) -> dict:
    from tinygrad_cnn import training

    meta, _, _ = training.read_checkpoint(args.resume)
    return meta.get("info", {})


def _take_from_checkpoint(args: argparse.Namespace, info: dict, option: str, default, command: str) -> None:
    """``--seed``, ``--val-split`` and ``--limit`` drew the checkpoint's training/validation/test
    splits: left out, they are the checkpoint's (``default`` for a checkpoint that does not
    say); given and different, an error, since they would score (or train on) images of the
    other splits without a word."""
    name = option.replace("-", "_")
    given = getattr(args, name)
    if name not in info:
        if given is None:
            setattr(args, name, default)
        return
    saved = info[name]
    if given is None:
        setattr(args, name, saved)
    elif saved != given:
        def shown(value):
            return "(all)" if value is None else f"{value:g}"

        raise ValueError(f"{command}: the checkpoint was trained with --{option} {shown(saved)}, whose "
                         f"splits keep its test images apart; --{option} {shown(given)} would mix them "
                         f"(leave --{option} out)")


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
    _take_from_checkpoint(args, info, "seed", 0, "evaluate")
    if info.get("dataset") not in (None, args.dataset):
        print(f"note: {args.checkpoint} was trained on {info['dataset']}; scoring it on {args.dataset}",
              file=sys.stderr)
    limit, args.limit = args.limit, None  # --limit counts the test images here
    _, test_data, _, _ = load_data(args, key, input_shape)
    test_loader = _loader(args, _limited(test_data, limit), input_shape, train=False)
    metrics = ("accuracy", "iou") if key in models.SEGMENTATION_MODELS else ("accuracy",)
    trainer = training.Trainer(model, None, metrics=metrics, progress=False, device=args.device)
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
