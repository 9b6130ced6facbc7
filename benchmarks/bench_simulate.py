"""Benchmark the simulate stage against bare Pythia at the same level, measured in the same run.

    python benchmarks/bench_simulate.py [--events 5000] [--level parton] [--dask-only --dask-chunks 8]

Prints events/s of bare `pythia.next()` and of the whole stage (generation, truth extraction, detector
response, fastjet, ROOT writing) for 1 and 2 workers, the per-worker ratio (target >= 0.70) and the
2-worker speed-up (target >= 1.8), and the stage's peak RSS for 1x and 4x the events (flat memory).

Then the Dask executor against the local process pool, both with 2 workers, in the same run (interleaved, best
of --repeat): the stage with `executor: dask` on the LocalCluster it starts (start-up included) over the stage
with the pool (target >= 0.90), the cluster's start-up and stop, a trivial task's round trip, the throughput of
trivial tasks, and the stage's overhead per chunk, (Dask time - pool time) / chunks.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mtt.core.workers import DaskExecutor, DaskParams
from mtt.stages.simulate.generator import GeneratorConfig, make_pythia, pythia_settings
from mtt.stages.simulate.params import SimulateParams
from mtt.stages.simulate.stage import run_simulation


def bare_rate(level: str, n_events: int, seed: int = 1) -> float:
    """Events/s of a bare `pythia.next()` loop (after init) at `level`."""
    pythia = make_pythia(pythia_settings(GeneratorConfig(level=level), seed))
    start = time.perf_counter()
    for _ in range(n_events):
        pythia.next()
    return n_events / (time.perf_counter() - start)


def bare_rate_parallel(level: str, n_events: int, workers: int) -> float:
    """Summed events/s of `workers` bare Pythia loops running at the same time."""
    with mp.get_context("fork").Pool(workers) as pool:
        rates = pool.starmap(bare_rate, [(level, n_events, seed) for seed in range(1, workers + 1)])
    return sum(rates)


def stage_rate(level: str, n_events: int, workers: int, chunk: int, executor: str = "local") -> float:
    """Events/s of the whole stage, wall clock from start (before a Dask LocalCluster is started) to the last
    file renamed into place."""
    params = SimulateParams(n_events=n_events, events_per_chunk=chunk, workers=workers, level=level,
                            progress=False, executor=executor)
    with tempfile.TemporaryDirectory() as tmp:
        return run_simulation(params, Path(tmp) / "raw")["events_per_second"]


def _noop(x: int) -> int:
    return x


def dask_task_overhead(workers: int, n_tasks: int = 400) -> dict[str, float]:
    """Seconds to start and stop the stage's LocalCluster (workers preloaded with the stage's module), a trivial task's
    round trip (submit, run, result; one at a time) and the throughput of trivial tasks submitted together."""
    start = time.perf_counter()
    executor = DaskExecutor(DaskParams(), workers, "bench", ["mtt.stages.simulate.stage"])
    started = time.perf_counter() - start
    with executor:
        list(executor.in_order(_noop, range(20), ["warm-up"] * 20))
        start = time.perf_counter()
        for i in range(50):
            list(executor.in_order(_noop, [i], ["round trip"]))
        round_trip = (time.perf_counter() - start) / 50
        start = time.perf_counter()
        list(executor.in_order(_noop, range(n_tasks), ["batch"] * n_tasks))
        per_task = (time.perf_counter() - start) / n_tasks
        stop = time.perf_counter()
    return {"start": started, "stop": time.perf_counter() - stop, "round_trip": round_trip, "per_task": per_task}


def dask_against_pool(level: str, events_per_chunk: int, chunks: int, repeat: int, workers: int = 2) -> None:
    """The stage on a 2-worker LocalCluster against the 2-worker process pool, interleaved, best of `repeat`."""
    n = events_per_chunk * chunks
    pool, on_dask = [], []
    for _ in range(repeat):
        pool.append(stage_rate(level, n, workers, events_per_chunk))
        on_dask.append(stage_rate(level, n, workers, events_per_chunk, executor="dask"))
    overhead = dask_task_overhead(workers)
    best_pool, best_dask = max(pool), max(on_dask)
    print(f"\nDask executor, level={level}, {n} events in {chunks} chunks of {events_per_chunk}, {workers} workers, "
          f"best of {repeat} (interleaved)")
    print(f"  process pool (events/s): {best_pool:.0f}  (all: {', '.join(f'{r:.0f}' for r in pool)})")
    print(f"  Dask LocalCluster (events/s, cluster start-up included): {best_dask:.0f}  "
          f"(all: {', '.join(f'{r:.0f}' for r in on_dask)})")
    print(f"  Dask / pool: {best_dask / best_pool:.2f} (target >= 0.90)")
    extra = n / best_dask - n / best_pool
    start_stop = overhead["start"] + overhead["stop"]
    print(f"  overhead per chunk, (Dask time - pool time) / chunks: {extra / chunks:.3f} s; without the cluster's "
          f"start and stop: {(extra - start_stop) / chunks:.3f} s")
    print(f"  LocalCluster start {overhead['start']:.2f} s, stop {overhead['stop']:.2f} s; trivial task round trip "
          f"{overhead['round_trip'] * 1e3:.1f} ms, trivial tasks in a batch {overhead['per_task'] * 1e3:.2f} ms each")


def peak_rss_mb(level: str, n_events: int, chunk: int) -> float:
    """Peak RSS (MB) of a fresh child process that runs the stage with one worker."""
    code = (f"from mtt.stages.simulate.stage import run_simulation; "
            f"from mtt.stages.simulate.params import SimulateParams; import tempfile;"
            f"import resource; run_simulation(SimulateParams(n_events={n_events}, events_per_chunk={chunk}, "
            f"workers=1, level='{level}', progress=False), tempfile.mkdtemp() + '/raw');"
            f"print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return int(result.stdout.strip().splitlines()[-1]) / 1024


def best(repeat: int, measure, *args, **kwargs) -> float:
    """Highest rate of `repeat` measurements: the least disturbed by other load on the machine."""
    return max(measure(*args, **kwargs) for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5000, help="events per worker")
    parser.add_argument("--level", default="parton", choices=["hard", "parton", "full"])
    parser.add_argument("--repeat", type=int, default=3, help="take the best of this many runs")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-dask", action="store_true", help="leave out the Dask executor comparison")
    parser.add_argument("--dask-only", action="store_true", help="only the Dask executor comparison")
    parser.add_argument("--dask-chunks", type=int, default=8, help="chunks of --events events for the Dask runs")
    args = parser.parse_args()
    n = args.events
    if args.dask_only:
        dask_against_pool(args.level, n, args.dask_chunks, args.repeat)
        return

    r = args.repeat
    bare_1 = best(r, bare_rate, args.level, n)
    stage_1 = best(r, stage_rate, args.level, n, workers=1, chunk=n)
    bare_2 = best(r, bare_rate_parallel, args.level, n, 2)
    stage_2 = best(r, stage_rate, args.level, 2 * n, workers=2, chunk=n)
    print(f"simulate benchmark, level={args.level}, {n} events per worker, best of {r}")
    print(f"{'':24s}{'bare pythia.next()':>20s}{'stage':>12s}{'stage/bare':>12s}")
    print(f"{'1 worker  (events/s)':24s}{bare_1:20.0f}{stage_1:12.0f}{stage_1 / bare_1:12.2f}")
    print(f"{'2 workers (events/s)':24s}{bare_2:20.0f}{stage_2:12.0f}{stage_2 / bare_2:12.2f}")
    print(f"2-worker speed-up of the stage: {stage_2 / stage_1:.2f}x (bare Pythia: {bare_2 / bare_1:.2f}x)")
    if not args.skip_memory:
        chunk = max(n // 4, 100)
        rss_1 = peak_rss_mb(args.level, chunk, chunk)
        rss_4 = peak_rss_mb(args.level, 4 * chunk, chunk)
        print(f"peak RSS, 1 worker, {chunk}-event chunks: {chunk} events {rss_1:.0f} MB, "
              f"{4 * chunk} events {rss_4:.0f} MB ({rss_4 / rss_1:.2f}x)")
    if not args.skip_dask:
        dask_against_pool(args.level, n, args.dask_chunks, args.repeat)


if __name__ == "__main__":
    main()
