"""The world: every process of a data-parallel run, and the collectives they take part in.

``mpirun -n 4 python train.py`` starts four copies of one script. MPI numbers them
(the *rank*, 0 to 3; the *world size* is 4) and lets them combine arrays:

* ``all_reduce``: every process passes an array and gets back the elementwise sum over
  all processes (how gradients are averaged);
* ``broadcast``: every process gets rank 0's array (how all replicas start equal);
* ``all_gather_object`` / ``broadcast_object``: small Python values (metrics, flags).

:func:`init` builds the world once per process. Started by ``mpirun`` (found from the
launcher's environment variables) it wraps mpi4py's ``COMM_WORLD``; started any other way
it is a world of one process whose collectives return their input, and mpi4py is never
imported: a single process works unchanged without MPI installed.

Failure handling. A collective waits for every process, so one that never arrives would
hang the others for ever. Two guards make the others stop with a clear error instead:

* an uncaught exception in any process prints its traceback (with the rank) and calls
  ``MPI_Abort``, which ends every process of the run (mpirun reports it); a process that
  dies (a crash, ``kill -9``) is detected by mpirun, which ends the others;
* every collective is started non-blocking and waited for with a deadline (``timeout``,
  default 300 s, env ``TINYGRAD_CNN_DISTRIBUTED_TIMEOUT``): a process that left the
  training loop early or hangs makes the others raise ``TimeoutError``, and so abort.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
import traceback

import numpy as np

DEFAULT_TIMEOUT = 300.0
TIMEOUT_VARIABLE = "TINYGRAD_CNN_DISTRIBUTED_TIMEOUT"
# What each MPI launcher puts in its processes' environment: the world size it started.
# (Open MPI, then MPICH's Hydra and Intel MPI; PMIx and Slurm launchers set a rank variable).
LAUNCHER_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
LAUNCHER_VARIABLES = LAUNCHER_SIZE_VARIABLES + ("PMIX_RANK", "PMI_RANK", "MV2_COMM_WORLD_SIZE")
# Thread pools that must share the cores of a machine between its processes.
THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
INSTALL_HINT = "pip install 'tinygrad_cnn[distributed]' (mpi4py and MPICH)"


def launched_by_mpi() -> bool:
    """True when this process was started by an MPI launcher (mpirun, mpiexec, srun)."""
    return any(name in os.environ for name in LAUNCHER_VARIABLES)


def _launcher_size() -> int | None:
    for name in LAUNCHER_SIZE_VARIABLES:
        if name in os.environ:
            return int(os.environ[name])
    return None


def cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def threads_per_process(processes_on_this_machine: int, available: int | None = None) -> int:
    """Threads each process gets so that processes x threads <= cores (at least 1)."""
    return max(1, (available or cores()) // max(1, processes_on_this_machine))


def share_cores(processes_on_this_machine: int) -> int:
    """Give each of this machine's processes its share of the cores; returns the thread count.

    Sets ``NUMBA_NUM_THREADS``, ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and
    ``MKL_NUM_THREADS`` where the user has not (read when Numba or a BLAS library loads),
    lowers Numba's threads if it is already loaded, and limits the BLAS and OpenMP pools
    already loaded (threadpoolctl). Two processes on two cores: one thread each."""
    threads = threads_per_process(processes_on_this_machine)
    if processes_on_this_machine <= 1:
        return threads
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, str(threads))
    numba = sys.modules.get("numba")
    if numba is not None:
        wanted = int(os.environ["NUMBA_NUM_THREADS"])
        numba.set_num_threads(max(1, min(wanted, numba.config.NUMBA_NUM_THREADS)))
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    return threads


class World:
    """One process alone: rank 0 of 1; collectives return their input."""

    rank, size, local_size = 0, 1, 1
    timeout = DEFAULT_TIMEOUT

    def all_reduce(self, array: np.ndarray) -> np.ndarray:
        """Sum ``array`` (C-contiguous numpy) elementwise over all processes, in place."""
        return array

    def broadcast(self, array: np.ndarray, root: int = 0) -> np.ndarray:
        """Overwrite ``array`` in place with the array of process ``root``."""
        return array

    def all_gather_object(self, value) -> list:
        """Every process's ``value`` (picklable), in rank order."""
        return [value]

    def broadcast_object(self, value, root: int = 0):
        """Process ``root``'s ``value``."""
        return self.all_gather_object(value)[root]

    def barrier(self) -> None:
        """Wait until every process got here."""

    def abort(self, code: int = 1) -> None:
        """End every process of the run (in a world of one there is nothing to end)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"


class MPIWorld(World):
    """The processes mpirun started, through mpi4py's ``COMM_WORLD``."""

    def __init__(self, comm, mpi, timeout: float) -> None:
        self.comm, self.MPI, self.timeout = comm, mpi, float(timeout)
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        # the processes on this machine share its cores (MPI knows which share its memory)
        self.local_size = comm.Split_type(mpi.COMM_TYPE_SHARED).Get_size()

    def _wait(self, request, what: str) -> None:
        """Wait for a non-blocking collective, at most ``timeout`` seconds.

        Test() also drives MPI's progress, so it is called in a tight loop for the first
        50 ms (where nearly every collective ends), then every half millisecond."""
        start = time.monotonic()
        while not request.Test():
            waited = time.monotonic() - start
            if waited > self.timeout:
                raise TimeoutError(
                    f"rank {self.rank} of {self.size}: {what} got no answer from the other processes "
                    f"in {self.timeout:g} s: a process stopped, hangs or left the training loop early "
                    f"(see its error above; {TIMEOUT_VARIABLE} sets the limit)")
            if waited > 0.05:
                time.sleep(0.0005)

    def all_reduce(self, array: np.ndarray) -> np.ndarray:
        self._wait(self.comm.Iallreduce(self.MPI.IN_PLACE, array, op=self.MPI.SUM), "all_reduce")
        return array

    def broadcast(self, array: np.ndarray, root: int = 0) -> np.ndarray:
        self._wait(self.comm.Ibcast(array, root=root), "broadcast")
        return array

    def all_gather_object(self, value) -> list:
        # pickled bytes, padded to the longest: two buffer collectives that honour the timeout
        data = np.frombuffer(pickle.dumps(value), dtype=np.uint8)
        longest = np.array([data.size], dtype=np.int64)
        self._wait(self.comm.Iallreduce(self.MPI.IN_PLACE, longest, op=self.MPI.MAX), "all_gather_object")
        sent = np.zeros(int(longest[0]), dtype=np.uint8)
        sent[: data.size] = data
        received = np.empty((self.size, sent.size), dtype=np.uint8)
        self._wait(self.comm.Iallgather(sent, received), "all_gather_object")
        # pickle ignores the padding after its STOP opcode
        return [pickle.loads(row.tobytes()) for row in received]

    def barrier(self) -> None:
        self._wait(self.comm.Ibarrier(), "barrier")

    def abort(self, code: int = 1) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)


_world: World | None = None


def _timeout_setting(timeout: float | None) -> float:
    if timeout is None:
        setting = os.environ.get(TIMEOUT_VARIABLE, str(DEFAULT_TIMEOUT))
        try:
            timeout = float(setting)
        except ValueError:
            raise ValueError(f"{TIMEOUT_VARIABLE} must be a number of seconds, got {setting!r}") from None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"init: timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def init(timeout: float | None = None) -> World:
    """Join the run this process belongs to (idempotent: later calls return the same world).

    Under an MPI launcher: MPI is initialised through mpi4py, an uncaught exception in any
    process aborts the whole run, collectives wait at most ``timeout`` seconds, and each
    process's Numba/BLAS threads are set so that the processes on one machine do not share
    cores (:func:`share_cores`). Otherwise: a world of one process, no MPI needed."""
    global _world
    if _world is not None:
        return _world
    timeout = _timeout_setting(timeout)
    if not launched_by_mpi():
        _world = World()
        _world.timeout = timeout
        return _world
    try:
        from mpi4py import MPI
    except ImportError:
        size = _launcher_size()
        raise RuntimeError(f"this process was started by mpirun (world size {size}) but mpi4py is not "
                           f"installed: {INSTALL_HINT}") from None
    world = MPIWorld(MPI.COMM_WORLD, MPI, timeout)
    expected = _launcher_size()
    if expected is not None and expected != world.size:
        raise RuntimeError(
            f"mpirun started {expected} processes but MPI sees a world of {world.size}: mpirun and the MPI "
            f"library of mpi4py ({MPI.Get_library_version().splitlines()[0].strip()}) come from different "
            "MPI installations; use the mpirun of the same one (`tinygrad-cnn train --processes N` finds it)")
    if world.size > 1:
        _abort_on_uncaught_exceptions(world)
        share_cores(world.local_size)
    _world = world
    return world


def _abort_on_uncaught_exceptions(world: MPIWorld) -> None:
    """An exception that ends one process must end all: the others wait in collectives."""
    def hook(kind, value, tb):
        sys.stderr.write(f"rank {world.rank} of {world.size} failed, stopping every process:\n"
                         + "".join(traceback.format_exception(kind, value, tb)))
        world.abort(1)
        os._exit(1)  # should MPI_Abort return: a process gone without MPI_Finalize also ends the run

    sys.excepthook = hook


def get_world() -> World:
    """The world of this process (:func:`init` on first use)."""
    return _world if _world is not None else init()


def is_initialized() -> bool:
    return _world is not None


def get_rank() -> int:
    """This process's number, 0 to world size - 1 (0 in a single process)."""
    return get_world().rank


def get_world_size() -> int:
    """How many processes train together (1 in a single process)."""
    return get_world().size


def is_main_process() -> bool:
    """Rank 0: the process that prints, logs and writes checkpoints."""
    return get_rank() == 0


def barrier() -> None:
    get_world().barrier()


def abort(code: int = 1) -> None:
    """End every process of a multi-process run now (a no-op in a single process)."""
    get_world().abort(code)
