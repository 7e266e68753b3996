"""Data-parallel training: the sampler, SyncBatchNorm, DDP and the launcher in one process,
then real 2-process runs under mpirun (tests/mpi_workers/), skipped without MPI.

Oracles: one process trained on the concatenated batches (float64, 1e-10), plain BatchNorm
on the batch that all processes together hold, and set arithmetic on the sampler's shares.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn as tc
import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor, distributed, nn, optim
from tinygrad_cnn.cli import _without_options, main
from tinygrad_cnn.data import DataLoader, TensorDataset
from tinygrad_cnn.distributed import launch
from tinygrad_cnn.distributed.ddp import plan_buckets
from tinygrad_cnn.distributed.sampler import DistributedLoader
from tinygrad_cnn.distributed.world import World, share_cores, threads_per_process
from tinygrad_cnn.nn.sync_batchnorm import sync_batch_norm_train
from tinygrad_cnn.testing import gradcheck
from tinygrad_cnn.training import CSVLogger, Trainer

WORKERS = Path(__file__).parent / "mpi_workers"


@pytest.fixture(autouse=True)
def reference_kernels():
    """These tests are about communication, not kernels: the readable ones, nothing to compile."""
    with tc.use_backend("reference"):
        yield


# ------------------------------------------------------------------ the sampler
@given(n=st.integers(0, 40), w=st.integers(1, 5), epoch=st.integers(0, 3), shuffle=st.booleans(),
       mode=st.sampled_from(["pad", "drop_last", "exact"]))
def test_sampler_shares_cover_every_index_once_per_epoch(n, w, epoch, shuffle, mode):
    options = {"pad": dict(), "drop_last": dict(drop_last=True), "exact": dict(pad=False)}[mode]
    samplers = [distributed.DistributedSampler(range(n), w, r, shuffle=shuffle, seed=5, **options)
                for r in range(w)]
    for s in samplers:
        s.set_epoch(epoch)
    shares = [list(s) for s in samplers]
    assert [len(s) for s in samplers] == [len(share) for share in shares]
    together = sorted(i for share in shares for i in share)
    if mode == "exact":
        assert together == list(range(n))
    elif mode == "pad":  # equal shares; every index at least once, padding repeats a few
        assert len({len(share) for share in shares}) == 1 and set(together) == set(range(n))
        assert len(together) - n == (-n) % w
    else:  # drop_last: equal shares, no index twice, fewer than w left out
        assert len({len(share) for share in shares}) == 1 and len(set(together)) == len(together)
        assert n - len(together) == n % w


@given(n=st.integers(1, 30), w=st.integers(1, 4), b=st.integers(1, 4), epoch=st.integers(0, 2))
def test_w_processes_with_batch_b_see_the_batches_of_one_process_with_batch_w_b(n, w, b, epoch):
    n = n * w * b  # no padding: the global batches are exactly one process's batches
    data = TensorDataset(np.arange(n, dtype=np.float32)[:, None], np.arange(n))
    single = DataLoader(data, w * b, shuffle=True, seed=11)
    single.set_epoch(epoch)
    ranks = []
    for r in range(w):
        loader = DistributedLoader(DataLoader(data, b, shuffle=True, seed=11),
                                   distributed.DistributedSampler(data, w, r, seed=11))
        loader.set_epoch(epoch)
        ranks.append([y.numpy() for _, y in loader])
    for t, (_, y) in enumerate(single):
        assert sorted(np.concatenate([batches[t] for batches in ranks])) == sorted(y.numpy())


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ValueError, match="rank must be an int in \\[0, 1\\], got 2"):
        distributed.DistributedSampler(range(4), num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas must be a positive int"):
        distributed.DistributedSampler(range(4), num_replicas=0, rank=0)
    with pytest.raises(TypeError, match="shuffle must be True or False"):
        distributed.DistributedSampler(range(4), shuffle="yes")
    with pytest.raises(TypeError, match="must have a length"):
        distributed.DistributedSampler(iter(range(4)))


# ------------------------------------------------------------------ SyncBatchNorm
class Duplicated(World):
    """A pretend world of 2 processes whose other process holds the same arrays as this one."""

    size = 2

    def all_reduce(self, array):
        array *= 2
        return array


def test_sync_batchnorm_function_normalises_over_all_processes():
    """Over two processes holding the same x, the statistics are those of cat([x, x]): the
    output equals BatchNorm's on the doubled batch, and the gradient of the input is the
    doubled batch's (its own half), while weight and bias get the local sums."""
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((3, 2, 4, 5)), requires_grad=True)
    w = Tensor(rng.standard_normal(2), requires_grad=True)
    b = Tensor(rng.standard_normal(2), requires_grad=True)
    upstream = rng.standard_normal(x.shape)
    y = sync_batch_norm_train(x, w, b, 1e-5, Duplicated())
    (y * Tensor(upstream)).sum().backward()
    doubled = Tensor(np.concatenate([x.numpy()] * 2), requires_grad=True)
    w2, b2 = Tensor(w.numpy(), requires_grad=True), Tensor(b.numpy(), requires_grad=True)
    expected = F.batch_norm(doubled, None, None, w2, b2, training=True)
    (expected * Tensor(np.concatenate([upstream] * 2))).sum().backward()
    np.testing.assert_allclose(y.numpy(), expected.numpy()[:3], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), doubled.grad.numpy()[:3], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w.grad.numpy(), w2.grad.numpy() / 2, rtol=1e-10)
    np.testing.assert_allclose(b.grad.numpy(), b2.grad.numpy() / 2, rtol=1e-10)


def test_sync_batchnorm_function_gradcheck_in_one_process():
    rng = np.random.default_rng(1)
    x = Tensor(rng.standard_normal((4, 3, 5)), requires_grad=True)
    w = Tensor(rng.standard_normal(3), requires_grad=True)
    b = Tensor(rng.standard_normal(3), requires_grad=True)
    assert gradcheck(lambda x, w, b: sync_batch_norm_train(x, w, b, 1e-5, World()), [x, w, b])


def test_convert_sync_batchnorm_keeps_order_parameters_and_state():
    tc.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3, momentum=0.3), nn.ReLU(),
                          nn.Flatten(), nn.Linear(12, 4), nn.BatchNorm1d(4, affine=False))
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    weight = model[1].weight
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert converted is model
    assert [type(m).__name__ for m in model] == ["Conv2d", "SyncBatchNorm", "ReLU", "Flatten", "Linear",
                                                 "SyncBatchNorm"]
    assert model[1].weight is weight and model[1].momentum == 0.3 and not model[5].affine
    assert list(model.state_dict()) == list(before)
    x = Tensor(np.random.default_rng(0).standard_normal((5, 1, 4, 4)).astype(np.float32))
    plain = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3, momentum=0.3), nn.ReLU(),
                          nn.Flatten(), nn.Linear(12, 4), nn.BatchNorm1d(4, affine=False))
    plain.load_state_dict(before)
    np.testing.assert_array_equal(model(x).numpy(), plain(x).numpy())  # one process: BatchNorm itself
    F.cross_entropy(model(x), np.arange(5) % 4).backward()
    optimizer.step()
    assert not np.array_equal(weight.numpy(), before["1.weight"])
    alone = nn.SyncBatchNorm.convert_sync_batchnorm(nn.BatchNorm2d(2))
    assert isinstance(alone, nn.SyncBatchNorm)
    with pytest.raises(ValueError, match="expected 2D or 3D or 4D or 5D input"):
        alone(Tensor(np.zeros(2)))


def test_sync_batchnorm_in_a_pretend_two_process_world_updates_running_statistics(monkeypatch):
    """Running statistics come from the global batch: with the other process holding the same
    x, mean_c as BatchNorm's on x and the unbiased variance with M = 2 N L."""
    monkeypatch.setattr("tinygrad_cnn.nn.sync_batchnorm.get_world", lambda: Duplicated())
    x = np.random.default_rng(2).standard_normal((4, 2, 3))
    layer = nn.SyncBatchNorm(2, momentum=1.0).double()
    layer(Tensor(x))
    m = 2 * 4 * 3
    np.testing.assert_allclose(layer.running_mean.numpy(), x.mean(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(layer.running_var.numpy(), x.var(axis=(0, 2)) * m / (m - 1), rtol=1e-12)
    assert int(layer.num_batches_tracked.item()) == 1
    layer.eval()
    layer(Tensor(x))  # evaluation: running statistics, no communication
    assert int(layer.num_batches_tracked.item()) == 1


# ------------------------------------------------------------------ DDP in one process
def small_model():
    tc.manual_seed(3)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))


def test_ddp_in_one_process_trains_as_the_plain_model_and_catches_a_forgotten_allreduce():
    x = Tensor(np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32))
    y = np.arange(8) % 3
    plain, wrapped = small_model(), small_model()
    ddp = distributed.DistributedDataParallel(wrapped, bucket_cap_mb=1e-4)
    assert len(ddp.buckets) > 1 and list(ddp.state_dict())[0].startswith("module.")
    for model, step in ((plain, lambda: None), (wrapped, ddp.allreduce_gradients)):
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _ in range(2):
            loss = F.cross_entropy((ddp if model is wrapped else model)(x), y)
            opt.zero_grad()
            loss.backward()
            step()
            opt.step()
    for a, b in zip(plain.parameters(), wrapped.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    F.cross_entropy(ddp(x), y).backward()
    with pytest.raises(RuntimeError, match="never averaged"):
        ddp(x)
    ddp.allreduce_gradients()
    with ddp.no_sync():
        F.cross_entropy(ddp(x), y).backward()
    ddp(x)  # gradients kept local on purpose are accepted
    with pytest.raises(TypeError, match="already wrapped"):
        distributed.DistributedDataParallel(ddp)
    with pytest.raises(ValueError, match="bucket_cap_mb must be a positive number"):
        distributed.DistributedDataParallel(small_model(), bucket_cap_mb=0)


def test_buckets_hold_one_dtype_and_respect_the_cap():
    tensors = [Tensor(np.zeros(n, dtype)) for n, dtype in
               ((10, np.float32), (10, np.float32), (30, np.float32), (5, np.float64), (5, np.float32))]
    buckets = plan_buckets(tensors, cap_bytes=80)
    assert [len(b) for b in buckets] == [2, 1, 1, 1]
    assert all(len({t.dtype for t in b}) == 1 for b in buckets)


def test_trainer_distributed_in_one_process_equals_the_plain_trainer(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 4)).astype(np.float32), rng.integers(0, 3, 40)
    results = []
    for flag in (False, True):
        model = small_model()
        trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.1, momentum=0.9), progress=False,
                          batch_size=8, seed=1, distributed=flag,
                          callbacks=[CSVLogger(tmp_path / f"{flag}.csv")])
        history = trainer.fit((x, y), 2, validation_data=(x[:9], y[:9]))
        results.append(([p.numpy() for p in model.parameters()], history.history))
    for a, b in zip(results[0][0], results[1][0]):
        np.testing.assert_array_equal(a, b)
    assert results[0][1] == results[1][1]
    assert (tmp_path / "True.csv").read_text() == (tmp_path / "False.csv").read_text()


# ------------------------------------------------------------------ world and launcher
def test_a_single_process_needs_no_mpi():
    env = {k: v for k, v in os.environ.items() if k not in distributed.world.LAUNCHER_VARIABLES}
    code = ("import sys; from tinygrad_cnn import distributed as d; w = d.init(); "
            "assert (d.get_rank(), d.get_world_size()) == (0, 1) and d.init() is w; "
            "assert 'mpi4py' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr


def test_threads_share_the_cores(monkeypatch):
    assert threads_per_process(2, available=2) == 1 and threads_per_process(3, available=8) == 2
    assert threads_per_process(4, available=2) == 1
    env = launch.child_environment(2, {"OMP_NUM_THREADS": "3"})
    expected = str(threads_per_process(2))
    assert env["NUMBA_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == expected
    assert env["OMP_NUM_THREADS"] == "3"  # the user's setting wins
    # share_cores changes this process: let it act on copies (environment, thread pools)
    environ = {k: v for k, v in os.environ.items() if k not in distributed.world.THREAD_VARIABLES}
    calls = []
    monkeypatch.setattr(os, "environ", environ)
    monkeypatch.setattr("threadpoolctl.threadpool_limits", lambda limits: calls.append(limits))
    monkeypatch.delitem(sys.modules, "numba", raising=False)
    monkeypatch.setattr("tinygrad_cnn.distributed.world.cores", lambda: 4)
    assert share_cores(2) == 2 and environ["NUMBA_NUM_THREADS"] == environ["OPENBLAS_NUM_THREADS"] == "2"
    assert calls == [2] and share_cores(1) == 4 and calls == [2]  # one process: nothing changed


def test_mpirun_command_flags():
    program = ["python", "-m", "tinygrad_cnn", "train"]
    openmpi = launch.mpirun_command("mpirun", 4, program, export=("OMP_NUM_THREADS",), kind="openmpi",
                                    as_root=True, available_cores=2)
    assert openmpi == ["mpirun", "-n", "4", "--allow-run-as-root", "--oversubscribe", "-x", "OMP_NUM_THREADS",
                       *program]
    assert launch.mpirun_command("mpirun", 2, program, kind="openmpi", as_root=False,
                                 available_cores=2) == ["mpirun", "-n", "2", *program]
    assert launch.mpirun_command("mpiexec", 2, program, hostfile="hosts", kind="mpich",
                                 as_root=True) == ["mpiexec", "-n", "2", "-f", "hosts", *program]
    assert _without_options(["train", "--processes", "2", "--epochs", "3", "--hostfile=h"],
                            ("--processes", "--hostfile")) == ["train", "--epochs", "3"]


def test_processes_without_mpi_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setattr(launch, "have_mpi4py", lambda: False)
    for name in distributed.world.LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert main(["train", "--processes", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinygrad-cnn: error: --processes needs MPI") and "[distributed]" in err
    assert main(["train", "--processes", "0"]) == 2
    assert "--processes must be positive" in capsys.readouterr().err


def test_no_mpirun_anywhere_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(launch, "have_mpi4py", lambda: True)
    monkeypatch.setattr(launch, "_environment_mpirun", lambda: None)
    monkeypatch.setattr(launch.shutil, "which", lambda name: None)
    monkeypatch.delenv(launch.MPIRUN_VARIABLE, raising=False)
    with pytest.raises(RuntimeError, match="needs an MPI launcher \\(mpirun\\), and none was found"):
        launch.find_mpirun()
    monkeypatch.setenv(launch.MPIRUN_VARIABLE, "/no/such/mpirun")
    with pytest.raises(RuntimeError, match="is not an executable mpirun"):
        launch.find_mpirun()


def test_started_by_mpirun_without_mpi4py_is_a_clear_error(monkeypatch):
    world_module = sys.modules["tinygrad_cnn.distributed.world"]
    monkeypatch.setattr(world_module, "_world", None)
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now fails
    with pytest.raises(RuntimeError, match=r"mpirun \(world size 2\) but mpi4py is not installed"):
        distributed.init()
    monkeypatch.delenv("PMI_SIZE")
    monkeypatch.setenv(world_module.TIMEOUT_VARIABLE, "soon")
    with pytest.raises(ValueError, match="must be a number of seconds, got 'soon'"):
        distributed.init()
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        distributed.init(timeout=0)


# ------------------------------------------------------------------ real runs under mpirun
def mpirun_or_skip() -> str:
    try:
        return launch.find_mpirun()
    except RuntimeError as error:
        pytest.skip(f"no MPI here ({error})")


def run_mpi(program: list[str], timeout: float = 120, **env) -> tuple[int, str, str, float]:
    """Run ``program`` as 2 MPI processes; kill the whole group if it outlives ``timeout``."""
    mpirun = mpirun_or_skip()
    command = launch.mpirun_command(mpirun, 2, program)
    environment = {**os.environ, "TINYGRAD_CNN_BACKEND": "reference", **env}
    for name in distributed.world.LAUNCHER_VARIABLES:
        environment.pop(name, None)
    start = time.monotonic()
    process = subprocess.Popen(command, env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        out, err = process.communicate()
        pytest.fail(f"the 2-process run hung for {timeout} s:\n{out[-2000:]}\n{err[-3000:]}")
    return process.returncode, out, err, time.monotonic() - start


def test_two_processes_equal_one_process_on_the_concatenated_batches(tmp_path):
    """One 2-process run (tests/mpi_workers/equivalence.py, about 5 s) checked as a whole: the
    numbers, the sampler's shares, the thread shares and rank 0's checkpoints."""
    code, stdout, stderr, _ = run_mpi([sys.executable, str(WORKERS / "equivalence.py"), str(tmp_path)])
    assert code == 0, stderr[-3000:]
    result = json.loads(next(line for line in stdout.splitlines() if line.startswith("RESULT "))[7:])
    # float64 parameters and buffers after 3 SGD steps (momentum, weight decay), SyncBatchNorm
    assert result["manual_vs_oracle"] < 1e-10, result  # DDP by hand
    assert result["trainer_vs_single"] < 1e-10, result  # Trainer(distributed=True), batch B vs 2B
    assert result["history_difference"] < 1e-10, result  # the same logged metrics
    assert result["manual_across_ranks"] == result["trainer_across_ranks"] == 0.0
    assert result["weights_moved"] > 1e-3 and result["plain_batchnorm_vs_oracle"] > 1e-3, result
    assert "never averaged" in result["forgotten_allreduce"]
    assert "rank 1 built another model than rank 0" in result["model_mismatch"]
    assert result["history_keys"] == ["accuracy", "loss", "lr", "val_accuracy", "val_loss"]
    # every index once per epoch across the ranks (the worker asserts the sets)
    assert result["sampler_share_sizes"] == {"36-pad": [[18, 18]] * 2, "37-nopad": [[19, 18]] * 2,
                                             "37-pad": [[19, 19]] * 2}
    # processes x threads <= cores
    assert result["local_size"] == 2
    assert result["numba_threads"] * result["local_size"] <= max(result["cores"], result["local_size"])
    # rank 0 alone wrote the checkpoints and the CSV log; a single process loads them
    assert result["saves_per_rank"] == [2, 0] and result["csv_loggers_per_rank"] == [1, 0]
    assert len((tmp_path / "history.csv").read_text().splitlines()) == 3
    sys.path.insert(0, str(WORKERS))
    try:
        from equivalence_model import network
    finally:
        sys.path.pop(0)
    model = network(seed=0)
    assert tc.training.load_checkpoint(tmp_path / "ckpt-2.npz", model)["epoch"] == 2
    single = tc.load(tmp_path / "single.npz")
    for name, value in model.state_dict().items():
        np.testing.assert_allclose(value.numpy(), single[name].numpy(), rtol=0, atol=1e-10, err_msg=name)


@pytest.mark.parametrize("mode, message", [
    ("raise", "rank 1 fails on purpose"),
    ("kill", "signal 9"),
    ("leave", "got no answer from the other processes in 3 s"),
])
def test_a_failing_process_stops_the_others_with_a_clear_error(mode, message):
    code, out, err, elapsed = run_mpi([sys.executable, str(WORKERS / "faults.py"), mode], timeout=90,
                                      TINYGRAD_CNN_DISTRIBUTED_TIMEOUT="3")
    assert code != 0 and "finished" not in out
    assert message in out + err, err[-3000:]
    assert elapsed < 60


def test_cli_processes_two_trains_and_rank_zero_writes(tmp_path, capsys):
    mpirun_or_skip()
    command = [sys.executable, "-m", "tinygrad_cnn", "train", "--processes", "2", "--epochs", "1",
               "--limit", "128", "--no-progress", "--backend", "reference", "--output", str(tmp_path)]
    environment = {k: v for k, v in os.environ.items() if k not in distributed.world.LAUNCHER_VARIABLES}
    out = subprocess.run(command, env=environment, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("test accuracy") == 1 and "batch 32 per process x 2 processes" in out.stdout
    assert {p.name for p in tmp_path.iterdir()} == {"checkpoint.npz", "history.csv", "scores.csv",
                                                    "training_curves.png"}
    assert main(["evaluate", "--checkpoint", str(tmp_path / "checkpoint.npz"), "--backend", "reference"]) == 0
    assert "lenet5 on digits (359 images)" in capsys.readouterr().out
