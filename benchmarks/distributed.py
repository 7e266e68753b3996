"""Data-parallel scaling: ResNet-20 training on 1 and 2 MPI processes, one thread each.

    python -m benchmarks.distributed            # about 3 minutes; needs the `distributed` extra
    python -m benchmarks.distributed --steps 5 --repeats 1  # quicker

For each process count W (1: a plain process, no MPI; 2: ``mpirun -n 2``) every process
trains ResNet-20 (option-A shortcuts, 3x32x32 inputs, batch 64 PER PROCESS, SGD with
momentum, Numba kernels, NUMBA/BLAS threads = 1) wrapped in DistributedDataParallel, and
reports the median over the timed steps of

* the step time (forward, cross-entropy, backward, gradient all_reduce, SGD update),
* the time inside ``allreduce_gradients`` (packing, the all_reduce of the buckets, unpacking;
  with W = 2 this includes waiting for the slower process),

then the throughput W x 64 / step time and the scaling efficiency
throughput(2) / (2 throughput(1)) = step(1) / step(2). The configurations run ``--repeats``
times, alternating, and the table takes each one's fastest run (other jobs on a shared
machine only ever slow a run down); every repeat is printed too.

Also, with W = 2: the all_reduce of the same gradients sent as one bucket of 4 MB (the
default), buckets of 256 KB, and one message per parameter, and a step with SyncBatchNorm
(19 layers, three small all_reduces each). Prints a markdown
table and writes ``benchmarks/out/distributed.json`` (with the load average before/after:
the two processes need both cores, so other work on the machine slows W = 2 most).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "out"
BATCH = 64


def _median_ms(times: list[float]) -> float:
    return 1e3 * statistics.median(times)


def worker(steps: int, warmup: int) -> None:
    """One process of the benchmark (rank 0 prints one line ``RESULT {json}``)."""
    import tinygrad_cnn as tc
    import tinygrad_cnn.nn.functional as F
    from tinygrad_cnn import distributed as dist
    from tinygrad_cnn import models, nn, optim

    world = dist.init()
    tc.set_backend("numba")
    rng = np.random.default_rng(world.rank)
    x = tc.Tensor(rng.standard_normal((BATCH, 3, 32, 32)).astype(np.float32))
    y = rng.integers(0, 10, BATCH)

    def run(sync_batchnorm: bool) -> dict:
        tc.manual_seed(0)
        model = models.resnet20()
        if sync_batchnorm:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ddp = dist.DistributedDataParallel(model)
        optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        step_times, reduce_times = [], []
        for step in range(warmup + steps):
            world.barrier()  # every step starts together: the median step is the slower process's
            start = time.perf_counter()
            loss = F.cross_entropy(ddp(x), y)
            optimizer.zero_grad()
            loss.backward()
            reduce_start = time.perf_counter()
            ddp.allreduce_gradients()
            reduce_end = time.perf_counter()
            optimizer.step()
            if step >= warmup:
                step_times.append(time.perf_counter() - start)
                reduce_times.append(reduce_end - reduce_start)
        return {"step_ms": _median_ms(step_times), "allreduce_ms": _median_ms(reduce_times),
                "buckets": len(ddp.buckets), "ddp": ddp}

    result = run(sync_batchnorm=False)
    ddp = result.pop("ddp")
    out = {"world_size": world.size, "threads": int(os.environ.get("NUMBA_NUM_THREADS", "0")),
           "plain": result}
    if world.size > 1:
        buckets = {}
        for label, cap_mb in (("4 MB buckets", 4.0), ("256 KB buckets", 0.25), ("one per parameter", 1e-9)):
            timed = dist.DistributedDataParallel(ddp.module, bucket_cap_mb=cap_mb)
            times = []
            for _ in range(warmup + steps):
                world.barrier()
                start = time.perf_counter()
                timed.allreduce_gradients()
                times.append(time.perf_counter() - start)
            buckets[label] = {"buckets": len(timed.buckets), "allreduce_ms": _median_ms(times[warmup:])}
        out["bucketing"] = buckets
        sync = run(sync_batchnorm=True)
        sync.pop("ddp")
        out["sync_batchnorm"] = sync
    if world.rank == 0:
        print("RESULT " + json.dumps(out), flush=True)


def _run(command: list[str]) -> dict:
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def markdown(results: dict) -> str:
    one, two = results["1"], results["2"]
    rows = ["| processes | step ms (median) | allreduce ms per step | images/s | scaling efficiency |",
            "|---:|---:|---:|---:|---:|"]
    for w, r in (("1", one), ("2", two)):
        rows.append(f"| {w} | {r['plain']['step_ms']:.1f} | {r['plain']['allreduce_ms']:.2f} | "
                    f"{r['images_per_s']:.1f} | {r['efficiency']:.2f} |")
    sync = two["sync_batchnorm"]
    rows += ["", "| 2 processes, gradient all_reduce of ResNet-20 (1.03 MB float32) | messages | ms |",
             "|---|---:|---:|"]
    rows += [f"| {label} | {b['buckets']} | {b['allreduce_ms']:.2f} |"
             for label, b in two["bucketing"].items()]
    rows += ["", f"SyncBatchNorm, 2 processes: step {sync['step_ms']:.1f} ms "
             f"({2 * BATCH * 1e3 / sync['step_ms']:.1f} images/s) against {two['plain']['step_ms']:.1f} ms "
             "with plain BatchNorm."]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=15, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3,
                        help="run the 1- and 2-process configurations this many times, alternating; the "
                             "table shows each one's fastest run (other jobs only ever slow a run down)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.steps, args.warmup)
        return {}
    from tinygrad_cnn.distributed import launch

    program = [sys.executable, "-m", "benchmarks.distributed", "--worker", "--steps", str(args.steps),
               "--warmup", str(args.warmup)]
    commands = {"1": program, "2": launch.mpirun_command(launch.find_mpirun(), 2, program)}
    results: dict = {"load_average_start": os.getloadavg(), "repeats": []}
    for _ in range(args.repeats):
        results["repeats"].append({w: _run(command) for w, command in commands.items()})
        results["repeats"][-1]["load_average"] = os.getloadavg()
    results["load_average_end"] = os.getloadavg()
    for w in commands:
        results[w] = min((r[w] for r in results["repeats"]), key=lambda r: r["plain"]["step_ms"])
    single = BATCH * 1e3 / results["1"]["plain"]["step_ms"]
    for w in ("1", "2"):
        r = results[w]
        r["images_per_s"] = int(w) * BATCH * 1e3 / r["plain"]["step_ms"]
        r["efficiency"] = r["images_per_s"] / (int(w) * single)
    text = markdown(results)
    print(text)
    for i, r in enumerate(results["repeats"]):
        ratio = r["1"]["plain"]["step_ms"] / r["2"]["plain"]["step_ms"]
        print(f"repeat {i + 1}: step 1 process {r['1']['plain']['step_ms']:.1f} ms, 2 processes "
              f"{r['2']['plain']['step_ms']:.1f} ms (efficiency {ratio:.2f}), load after "
              f"{r['load_average'][0]:.2f}")
    print(f"load average before {results['load_average_start']}, after {results['load_average_end']}")
    OUT.mkdir(exist_ok=True)
    (OUT / "distributed.json").write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
