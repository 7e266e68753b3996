"""Starting a run: ``tinygrad-cnn train --processes N`` builds and runs the mpirun command.

Which mpirun. mpirun and the MPI library that mpi4py loads must come from one MPI
installation (a mismatch starts N unrelated one-process worlds; :func:`init` detects it
and says so). mpi4py looks for the library in this Python's environment first (where
``pip install 'tinygrad_cnn[distributed]'`` puts the MPICH wheel), then in the system's
library path, so mpirun is searched in the same order:

1. ``TINYGRAD_CNN_MPIRUN`` (a path), when set;
2. ``<this Python's prefix>/bin/mpirun`` when that prefix holds an MPI library (the wheel),
   unless ``MPI4PY_LIBMPI`` points mpi4py elsewhere;
3. ``mpirun`` or ``mpiexec`` on the PATH (the system's MPI).

Flavours. ``mpirun --version`` tells Open MPI from MPICH (and Intel MPI, which is MPICH's
launcher). Open MPI refuses to run as root without ``--allow-run-as-root`` and more
processes than cores without ``--oversubscribe``; both are added where needed. Several
machines: ``--hostfile FILE`` is passed on (Open MPI: lines ``host slots=2``; MPICH:
``host:2``).

Threads. The children get ``NUMBA_NUM_THREADS``, ``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` = cores // processes on this machine (at
least 1), unless already set, before any of them loads Numba or BLAS; with a hostfile
each process sets its own share when it joins (:func:`~.world.share_cores`).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
import sys

from tinygrad_cnn.distributed.world import INSTALL_HINT, THREAD_VARIABLES, cores, threads_per_process

MPIRUN_VARIABLE = "TINYGRAD_CNN_MPIRUN"


def have_mpi4py() -> bool:
    return importlib.util.find_spec("mpi4py") is not None


def _environment_mpirun() -> str | None:
    """The mpirun of an MPI wheel installed into this Python's environment, if any."""
    if os.environ.get("MPI4PY_LIBMPI"):
        return None
    prefix = sys.prefix
    if not glob.glob(os.path.join(prefix, "lib", "libmpi.so*")) and \
            not glob.glob(os.path.join(prefix, "lib", "libmpi*.dylib")):
        return None
    candidate = os.path.join(prefix, "bin", "mpirun")
    return candidate if os.access(candidate, os.X_OK) else None


def find_mpirun() -> str:
    """The mpirun to use (see the module text); RuntimeError saying how to install MPI."""
    if not have_mpi4py():
        raise RuntimeError(f"--processes needs MPI and mpi4py, which are not installed: {INSTALL_HINT}")
    explicit = os.environ.get(MPIRUN_VARIABLE)
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise RuntimeError(f"{MPIRUN_VARIABLE}={explicit} is not an executable mpirun")
        return explicit
    found = _environment_mpirun() or shutil.which("mpirun") or shutil.which("mpiexec")
    if found is None:
        raise RuntimeError(f"--processes needs an MPI launcher (mpirun), and none was found in "
                           f"{sys.prefix}/bin or on the PATH: {INSTALL_HINT}, or install your system's MPI")
    return found


def flavour(mpirun: str) -> str:
    """``"openmpi"``, ``"mpich"`` (MPICH, Intel MPI) or ``"unknown"``, from ``mpirun --version``."""
    try:
        text = subprocess.run([mpirun, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if "Open MPI" in text or "OpenRTE" in text or "prterun" in text.lower():
        return "openmpi"
    if "HYDRA" in text or "MPICH" in text or "Intel(R) MPI" in text:
        return "mpich"
    return "unknown"


def child_environment(processes_here: int, environ: dict | None = None) -> dict:
    """The environment for the processes: each thread pool gets its share of the cores."""
    env = dict(os.environ if environ is None else environ)
    threads = str(threads_per_process(processes_here))
    for name in THREAD_VARIABLES:
        env.setdefault(name, threads)
    return env


def mpirun_command(mpirun: str, processes: int, program: list[str], hostfile: str | None = None,
                   export: tuple[str, ...] = (), kind: str | None = None, as_root: bool | None = None,
                   available_cores: int | None = None) -> list[str]:
    """``[mpirun, -n, N, <flags>, *program]`` with the flags this MPI needs here; ``export``:
    environment variables the processes on other hosts must see too."""
    kind = flavour(mpirun) if kind is None else kind
    as_root = (hasattr(os, "geteuid") and os.geteuid() == 0) if as_root is None else as_root
    command = [mpirun, "-n", str(processes)]
    if hostfile is not None:
        command += ["--hostfile" if kind == "openmpi" else "-f", hostfile]
    if kind == "openmpi":
        if as_root:
            command.append("--allow-run-as-root")
        if hostfile is None and processes > (available_cores or cores()):
            command.append("--oversubscribe")
        for name in export:  # Open MPI passes only the variables named with -x to other hosts
            command += ["-x", name]
    return command + program


def launch(processes: int, arguments: list[str], hostfile: str | None = None) -> int:
    """Run ``python -m tinygrad_cnn <arguments>`` as ``processes`` MPI processes; returns
    mpirun's exit code. The same Python must exist at the same path on every host."""
    if hostfile is not None and not os.path.isfile(hostfile):
        raise FileNotFoundError(f"--hostfile {hostfile}: no such file")
    mpirun = find_mpirun()
    # one machine: the shares are known now; several: each process sets its host's share on joining
    env = child_environment(processes) if hostfile is None else dict(os.environ)
    export = tuple(name for name in THREAD_VARIABLES if name in env)
    program = [sys.executable, "-m", "tinygrad_cnn", *arguments]
    return subprocess.call(mpirun_command(mpirun, processes, program, hostfile, export), env=env)
