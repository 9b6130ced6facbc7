"""Benchmark the prepare stage (ROOT -> selection -> features -> Parquet) against uproot alone.

    python benchmarks/bench_prepare.py [--events 100000] [--chunk 25000] [--workers 2]
    python benchmarks/bench_prepare.py --input data/raw --old-src OLD/src  # 1x only, an older revision too

Input: `--events` parton-level events simulated once into benchmarks/.work/ (files of `--chunk` events, the
simulate default); the 4x input is those and three more samples of the same size from other seeds (distinct
events: prepare refuses an event read twice). For each, prints events/s of the whole stage
and the stage's peak RSS (main process and largest worker), next to the events/s of uproot alone reading the
same branches of the same files in the same run. Targets: >= 200k events/s on 2 cores; peak RSS for 4x input
within 25% of 1x.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import uproot

from mtt.core.events.params import PrepareParams
from mtt.core.events.schemas import NATIVE
from mtt.stages.simulate.params import SimulateParams
from mtt.stages.simulate.stage import MANIFEST, run_simulation

#: cached inputs; MTT_BENCH_WORK moves them (the smoke tests keep theirs apart)
WORK = Path(os.environ.get("MTT_BENCH_WORK", Path(__file__).resolve().parent / ".work"))


#: the simulate default seed (the 1x input) and three more for the 4x input: four run numbers, distinct events
SEEDS = (12345, 12346, 12347, 12348)


def make_input(n_events: int, chunk: int, seed: int = SEEDS[0]) -> Path:
    """Simulated files of one seed (reused when a previous run made the same ones)."""
    folder = WORK / f"prepare_{n_events}_{chunk}" / ("raw" if seed == SEEDS[0] else f"raw_seed{seed}")
    manifest = folder / MANIFEST
    if not (manifest.exists() and json.loads(manifest.read_text())["n_events"] == n_events):
        run_simulation(SimulateParams(n_events=n_events, events_per_chunk=chunk, seed=seed, progress=False), folder)
    return folder


def uproot_rate(folders: list[Path], step_size: int) -> float:
    """Events/s of uproot alone reading the branches prepare reads, in the same steps."""
    start = time.perf_counter()
    n = 0
    for path in (p for folder in folders for p in sorted(folder.glob("*.root"))):
        tree = uproot.open(path)["Events"]
        for arrays in tree.iterate(NATIVE.branches(with_truth=True), step_size=step_size, library="ak"):
            n += len(arrays)
    return n / (time.perf_counter() - start)


def stage_run(folders: list[Path], out: Path, workers: int, src: str | None = None) -> dict:
    """Run the stage in a fresh process (with `src` first on its path: another revision's code); its rate and
    peak RSS (MB) of the main process and of a worker."""
    code = f"""
import json, resource, time
from mtt.core.events.params import PrepareParams
from mtt.stages.prepare.stage import run_prepare
start = time.perf_counter()
metrics = run_prepare(PrepareParams(workers={workers}), {[str(f) for f in folders]!r}, {str(out)!r})
seconds = time.perf_counter() - start
print(json.dumps({{"rate": metrics["cutflow"]["all"]["events"] / seconds, "events": metrics["cutflow"]["all"]["events"],
    "rss_main": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "rss_worker": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}}))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])} if src else None
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


def compare(args: argparse.Namespace) -> None:
    """1x only: uproot alone, the stage and (with --old-src) the older stage, runs interleaved, best of each."""
    folders = [args.input or make_input(args.events, args.chunk)]
    step = PrepareParams().step_size
    sources = {"stage": None, **({"old stage": args.old_src} if args.old_src else {})}
    best = dict.fromkeys(["uproot alone", *sources], 0.0)
    for _ in range(args.repeat):
        best["uproot alone"] = max(best["uproot alone"], uproot_rate(folders, step))
        for name, src in sources.items():
            rate = stage_run(folders, WORK / f"prepared_{name.replace(' ', '_')}", args.workers, src)["rate"]
            best[name] = max(best[name], rate)
    print(f"prepare benchmark: {folders[0]}, {args.workers} workers, best of {args.repeat}, interleaved")
    for name, rate in best.items():
        ratio = "" if name == "uproot alone" else f"   stage/uproot {rate / best['uproot alone']:.2f}"
        print(f"{name:>14s}{rate:12.0f}/s{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--chunk", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="take the best rate of this many runs")
    parser.add_argument("--input", type=Path, help="an existing simulate folder as the 1x input (no 4x)")
    parser.add_argument("--old-src", help="an older revision's src/: its stage timed too, interleaved (1x only)")
    args = parser.parse_args()
    if args.input or args.old_src:
        compare(args)
        return
    one = [make_input(args.events, args.chunk)]
    four = [make_input(args.events, args.chunk, seed) for seed in SEEDS]
    step = PrepareParams().step_size
    print(f"prepare benchmark: {args.chunk}-event files, {args.workers} workers, best of {args.repeat}")
    print(f"{'input':>14s}{'uproot alone':>16s}{'stage':>12s}{'stage/uproot':>14s}{'RSS main':>11s}{'RSS worker':>12s}")
    rss = {}
    for label, folders in (("1x", one), ("4x", four)):
        reference = max(uproot_rate(folders, step) for _ in range(args.repeat))
        runs = [stage_run(folders, WORK / "prepared", args.workers) for _ in range(args.repeat)]
        best = max(runs, key=lambda r: r["rate"])
        rss[label] = max(r["rss_main"] + r["rss_worker"] for r in runs)
        print(f"{label + ' ' + str(best['events']):>14s}{reference:13.0f}/s{best['rate']:10.0f}/s"
              f"{best['rate'] / reference:14.2f}{best['rss_main']:8.0f} MB{best['rss_worker']:9.0f} MB")
    print(f"peak RSS (main + worker), 4x / 1x: {rss['4x'] / rss['1x']:.2f}")


if __name__ == "__main__":
    main()
