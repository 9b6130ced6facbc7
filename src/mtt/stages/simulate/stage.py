"""`simulate` stage: Pythia 8 tt -> dilepton events, detector response, NanoAOD-style ROOT files.

Events are made in chunks; each chunk has its own seed derived from `simulate.seed` and its index, is
generated, reconstructed and written by one worker, and is freed before the next, so memory stays flat and
a chunk's events do not depend on how many workers ran. With `simulate.executor: dask` each chunk is one Dask
task instead (`mtt.core.workers.DaskExecutor`), written by its worker into the same temporary folder: the same files.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from mtt.core.io import SIMULATION_MANIFEST, OutputError, atomic_dir, atomic_file, check_output_dir, portable_path
from mtt.core.lineage import log_stage_to_active_run
from mtt.core.workers import DaskExecutor, LocalExecutor, resolve_workers, stage_executor
from mtt.stages.simulate.detector import DetectorCard, reconstruct
from mtt.stages.simulate.generator import (
    GeneratorConfig,
    GeneratorError,
    chunk_seeds,
    generate,
    make_pythia,
    pythia_settings,
)
from mtt.stages.simulate.lhe import inspect_lhe
from mtt.stages.simulate.output import event_ids, reco_branches, truth_branches, write_events
from mtt.stages.simulate.params import SimulateParams

MANIFEST = SIMULATION_MANIFEST
#: params that change how the stage runs, not the events: left out of the manifest
UNRECORDED_PARAMS = frozenset({"executor", "dask", "workers", "progress"})
#: events reconstructed at a time inside a chunk: bounds memory, large enough to amortise awkward overhead
RECO_BATCH = 5000

__all__ = ["ChunkJob", "main", "plan_chunks", "run_simulation", "simulate_chunk", "simulate_chunk_on_worker"]


@dataclass(frozen=True)
class ChunkJob:
    """Everything one worker needs to make one chunk file."""

    index: int
    first_event: int
    n_events: int
    master_seed: int
    generator: GeneratorConfig
    card: DetectorCard
    out_dir: str

    @property
    def filename(self) -> str:
        return f"events_{self.index:05d}.root"

    @property
    def identity(self) -> str:
        """What makes this chunk's file (the seed, the chunk, its events, generator and detector, the LHE file by
        name): its UUIDs derive from it, so the same params give the same bytes wherever it runs."""
        lhe = None if self.generator.lhe_file is None else Path(self.generator.lhe_file).name
        generator = dataclasses.replace(self.generator, lhe_file=lhe)
        return (f"simulate seed={self.master_seed} chunk={self.index} first_event={self.first_event} "
                f"n_events={self.n_events} {generator} {self.card}")


def plan_chunks(n_events: int, events_per_chunk: int) -> list[tuple[int, int, int]]:
    """(index, first event, number of events) for each chunk."""
    return [(i, first, min(events_per_chunk, n_events - first))
            for i, first in enumerate(range(0, n_events, events_per_chunk))]


_progress: Any = None  # a shared counter of generated events, set in each worker


def _init_worker(counter: Any) -> None:
    global _progress
    _progress = counter


def _tick(n: int) -> None:
    if _progress is not None:
        with _progress.get_lock():
            _progress.value += n


def _concatenate_branches(pieces: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: (ak.concatenate if isinstance(v, ak.Array) else np.concatenate)([p[k] for p in pieces])
            for k, v in pieces[0].items()}


def simulate_chunk(job: ChunkJob) -> dict[str, Any]:
    """Generate, reconstruct and write one chunk; return its summary.

    Events are reconstructed in sub-batches of RECO_BATCH and only their (small) output branches are kept,
    so memory does not grow with the chunk size; the partition is fixed, so results do not depend on workers.
    """
    pythia_seed, detector_seed = chunk_seeds(job.master_seed, job.index)
    pythia = make_pythia(pythia_settings(job.generator, pythia_seed, skip_lhe_events=job.first_event))
    rng = np.random.default_rng(detector_seed)
    pieces = []
    n = 0
    while n < job.n_events:
        columns = generate(pythia, min(RECO_BATCH, job.n_events - n), job.generator.level == "full", tick=_tick)
        if columns is None:  # the LHE file ended
            break
        pieces.append({**reco_branches(reconstruct(columns, rng, job.card)), **truth_branches(columns)})
        n += len(columns["weight"])
    if not pieces:
        raise GeneratorError(f"chunk {job.index}: Pythia produced no events")
    branches = {**event_ids(job.master_seed, job.index, job.first_event, n), **_concatenate_branches(pieces)}
    write_events(Path(job.out_dir) / job.filename, branches, job.identity)
    return {"file": job.filename, "chunk": job.index, "first_event": job.first_event, "n_events": n,
            "pythia_seed": pythia_seed}


def _run_jobs(jobs: list[ChunkJob], workers: int, total: int, progress: bool) -> list[dict[str, Any]]:
    """Run chunk jobs in-process (1 worker) or in local worker processes, with a progress bar in events/s."""
    counter = mp.get_context("fork").Value("q", 0)
    if workers == 1:
        return _with_progress(counter, total, progress, lambda bar: _run_here(jobs, counter, bar))
    # the workers are forked before the progress bar starts its monitor thread
    with LocalExecutor(workers, "simulate", initializer=_init_worker, initargs=(counter,)) as local:
        return _with_progress(counter, total, progress, lambda bar: _run_pool(local, jobs, counter, bar))


def _with_progress(counter: Any, total: int, progress: bool, run: Callable[[Any], list[dict[str, Any]]],
                   ) -> list[dict[str, Any]]:
    """run(bar) with a tqdm bar fed by the workers' shared event counter."""
    from tqdm import tqdm

    bar = tqdm(total=total, unit="ev", unit_scale=True, desc="simulate", disable=not progress,
               file=sys.stderr, smoothing=0.1, mininterval=0.5 if sys.stderr.isatty() else 10.0)
    try:
        results = run(bar)
        bar.update(counter.value - bar.n)
        return results
    finally:
        _init_worker(None)
        bar.close()


def _run_here(jobs: list[ChunkJob], counter: Any, bar: Any) -> list[dict[str, Any]]:
    """One worker: the chunks in this process, the bar updated after each."""
    _init_worker(counter)
    results = []
    for job in jobs:
        results.append(simulate_chunk(job))
        bar.update(counter.value - bar.n)
    return results


def _run_pool(local: LocalExecutor, jobs: list[ChunkJob], counter: Any, bar: Any) -> list[dict[str, Any]]:
    """Several workers: the bar polls the shared counter while the chunks run, so it moves within a chunk."""
    pending = local.submit(simulate_chunk, jobs)
    while not all(p.done() for p in pending):
        time.sleep(0.25)
        bar.update(counter.value - bar.n)
    return local.results(pending, [f"chunk {job.index} ({job.filename})" for job in jobs])


def simulate_chunk_on_worker(job: ChunkJob) -> dict[str, Any]:
    """A Dask task: `simulate_chunk`, once the worker has checked that it sees the output folder."""
    if not Path(job.out_dir).is_dir():
        raise OutputError(f"simulate: chunk {job.index}: the Dask worker on {socket.gethostname()} cannot see the "
                          f"output folder {job.out_dir} (workers must share the filesystem the stage writes to)")
    return simulate_chunk(job)


def _run_dask(executor: DaskExecutor, jobs: list[ChunkJob], total: int, progress: bool) -> list[dict[str, Any]]:
    """Run chunk jobs as Dask tasks, one per chunk, with a progress bar that moves as chunks finish."""
    from tqdm import tqdm

    bar = tqdm(total=total, unit="ev", unit_scale=True, desc="simulate", disable=not progress, file=sys.stderr,
               mininterval=0.5 if sys.stderr.isatty() else 10.0)
    try:
        results = []
        for result in executor.as_completed(simulate_chunk_on_worker, jobs, [f"chunk {j.index}" for j in jobs]):
            results.append(result)
            bar.update(result["n_events"])
        return results
    finally:
        bar.close()


def run_simulation(params: SimulateParams, out_dir: str | os.PathLike[str], overwrite: bool = False) -> dict[str, Any]:
    """Run the stage: check inputs, make every chunk into a fresh folder, swap it in when all succeeded."""
    out_dir = check_output_dir(out_dir, "simulate", [params.lhe_file] if params.lhe_file else [], overwrite)
    n_events = params.n_events
    generator = GeneratorConfig(level=params.level, sqrt_s=params.sqrt_s, top_mass=params.top_mass,
                                lhe_file=None, process=params.process, zprime_mass=params.zprime.mass,
                                zprime_width=params.zprime.width)
    lhe_info = None
    if params.lhe_file:
        lhe_info = inspect_lhe(params.lhe_file)
        n_events = min(n_events, lhe_info.n_events)
        generator = GeneratorConfig(level=params.level, sqrt_s=lhe_info.sqrt_s, top_mass=params.top_mass,
                                    lhe_file=str(Path(params.lhe_file).resolve()))
    chunks = plan_chunks(n_events, params.events_per_chunk)
    workers = resolve_workers(params.workers, len(chunks))
    card = DetectorCard(jet_radius=params.jet_radius, jet_pt_min=params.jet_pt_min)
    start = time.perf_counter()
    # the Dask executor connects (or starts its LocalCluster) before any chunk runs, and stops before the
    # temporary folder is removed, so no worker is left writing into it
    with atomic_dir(out_dir, "simulate") as tmp, stage_executor(params, workers, "simulate", __name__) as executor:
        jobs = [ChunkJob(i, first, n, params.seed, generator, card, str(tmp)) for i, first, n in chunks]
        if executor is None:
            results = _run_jobs(jobs, workers, n_events, params.progress)
        else:
            workers = executor.workers
            results = _run_dask(executor, jobs, n_events, params.progress)
        manifest = {
            "n_events": sum(r["n_events"] for r in results),
            # where and on how many workers the chunks ran does not change them: the record (and the output's
            # hash) leaves it out, so 1 or 2 workers, local or Dask, give the same bytes
            "params": params.model_dump(exclude=UNRECORDED_PARAMS),
            "sqrt_s": generator.sqrt_s,
            "lhe": None if lhe_info is None else {"path": portable_path(lhe_info.path), "n_events": lhe_info.n_events,
                                                  "beam_energies": list(lhe_info.beam_energies)},
            "detector": asdict(card),
            "chunks": sorted(results, key=lambda r: r["chunk"]),
        }
        with atomic_file(tmp / MANIFEST) as manifest_tmp:
            manifest_tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    seconds = time.perf_counter() - start
    return {**manifest, "seconds": seconds, "events_per_second": manifest["n_events"] / seconds,
            "workers": workers, "executor": "local" if executor is None else f"dask at {executor.address}"}


def main(params: SimulateParams, out_dir: str, overwrite: bool = False) -> dict[str, Any]:
    """Stage entry: run, print a one-line summary, log to an active MLflow run if there is one."""
    summary = run_simulation(params, out_dir, overwrite)
    print(f"simulate: {summary['n_events']} events in {len(summary['chunks'])} file(s) -> {out_dir} "
          f"({summary['events_per_second']:.0f} events/s, {summary['workers']} worker(s), {summary['executor']}, "
          f"level={params.level}, process={params.process})")
    if os.environ.get("MLFLOW_RUN_ID"):
        log_stage_to_active_run("simulate", params.model_dump(), {
            "n_events": summary["n_events"], "events_per_second": summary["events_per_second"]},
            Path(out_dir) / MANIFEST)
    return summary
