"""The prepare stage: ROOT files -> selected events, features, train/val/test Parquet (with metadata).

Files are read in steps of `prepare.step_size` events by a process pool, so peak memory does not grow with
the number of input files; results come back in input order, so the output is deterministic. With
`prepare.executor: dask` each step is one Dask task instead (`mtt.core.workers.DaskExecutor`), collected in the same
order: the same output.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np
import pyarrow as pa

from mtt.core.dataset import (
    DIAGNOSTICS,
    ID_COLUMNS,
    METADATA_KEY,
    NEUTRINOS,
    SPLITS,
    TARGET,
    feature_columns,
    set_columns,
    unit,
)
from mtt.core.errors import PrepareError
from mtt.core.events.inputs import (
    Step,
    cached_tree,
    check_branches,
    check_distinct,
    check_distinct_content,
    check_weights,
    clear_open_trees,
    discover_inputs,
    generator_record,
    has_truth,
    plan_steps,
)
from mtt.core.events.matching import B_TRUTH, b_candidate_match, match_summary
from mtt.core.events.neutrinos import NEUTRINO_BRANCHES, neutrino_columns, neutrinos_in_all
from mtt.core.events.params import PrepareParams
from mtt.core.events.schemas import SCHEMAS
from mtt.core.events.selection import CUTS, format_cutflow
from mtt.core.events.step import report_nonfinite_inputs, select_step
from mtt.core.io import (
    atomic_dir,
    check_not_protected,
    check_output_dir,
    check_output_file,
    file_sha256,
    portable_path,
    write_json,
)
from mtt.core.workers import DaskExecutor, LocalExecutor, resolve_workers, stage_executor
from mtt.stages.prepare.output import SplitWriters, check_unique_ids, cutflow_metrics
from mtt.stages.prepare.split import assign


@dataclass(frozen=True)
class StepJob:
    """What a worker needs to turn one step into rows of the output table."""

    step: Step
    params: PrepareParams
    truth: bool
    columns: tuple[str, ...]
    neutrinos: bool = False  # the inputs have the truth neutrinos: write their columns


@dataclass
class StepResult:
    """Cutflow counts, the selected rows of each split (Arrow tables), dropped non-finite counts of one step."""

    cutflow: dict[str, int]
    parts: dict[str, pa.Table]
    nonfinite: dict[str, int]
    b_match: dict[str, int]  # events, available, correct (simulated samples; empty without truth b quarks)
    nonfinite_inputs: dict[str, int]  # per input branch checked, events with NaN/inf in it (set aside)


def process_step(job: StepJob) -> StepResult:
    """Read, map to canonical objects, select, build features (mtt.core.events), drop non-finite rows, assign splits."""
    params = job.params
    extra = [*(B_TRUTH.values() if job.truth else ()), *(NEUTRINO_BRANCHES if job.neutrinos else ())]
    selected = select_step(job.step, params, job.truth, job.columns, extra)
    b_match = _b_match(selected.arrays, selected.candidates)
    table = with_neutrinos(selected.table, selected.arrays, params.units) if job.neutrinos else selected.table
    checked = [*job.columns, *(truth_names(job.truth, job.neutrinos))]
    table, nonfinite = drop_nonfinite(table, checked)
    splits = assign(table["run"], table["luminosityBlock"], table["event"], params.split)
    whole = pa.table(table)
    parts = {name: whole.filter(pa.array(splits == name)) for name in SPLITS}
    return StepResult(selected.cutflow, parts, nonfinite, b_match, selected.nonfinite)


def truth_names(truth: bool, neutrinos: bool) -> list[str]:
    """The truth columns written: m_tt and the diagnostics, and the neutrinos where the inputs have them."""
    return [*([TARGET, *DIAGNOSTICS] if truth else []), *(NEUTRINOS if truth and neutrinos else [])]


def with_neutrinos(table: dict[str, np.ndarray], arrays: ak.Array, units: str) -> dict[str, np.ndarray]:
    """The step's table with the truth-neutrino columns after the diagnostics (before the identity columns)."""
    ids = ID_COLUMNS[0]
    keys = list(table)
    at = keys.index(ids) if ids in keys else len(keys)
    columns = neutrino_columns(arrays, 1e-3 if units == "MeV" else 1.0)
    return {**{k: table[k] for k in keys[:at]}, **columns, **{k: table[k] for k in keys[at:]}}


def _add(total: dict[str, int], part: dict[str, int]) -> None:
    """Sum one step's counts into the totals."""
    for name, n in part.items():
        total[name] = total.get(name, 0) + n


def _b_match(selected: ak.Array, candidates: Any) -> dict[str, int]:
    """Counts of the b-candidate truth match, where the input has the truth b quarks."""
    if not all(branch in selected.fields for branch in B_TRUTH.values()):
        return {}
    quarks = {key: ak.to_numpy(selected[branch]) for key, branch in B_TRUTH.items()}
    available, correct = b_candidate_match(candidates.b1, candidates.b2, candidates.jets, quarks)
    return {"events": int(available.size), "available": int(available.sum()), "correct": int(correct.sum())}


def process_step_on_worker(job: StepJob) -> StepResult:
    """A Dask task: `process_step` on a worker that sees the input file; the file is closed again afterwards, so a
    long-lived worker never reads a file that was replaced since (a new simulation) through an old handle."""
    if not job.step.path.is_file():
        raise PrepareError(f"{job.step.path}: the Dask worker on {socket.gethostname()} cannot see this input file "
                           "(workers must share the filesystem the inputs are on)")
    try:
        return process_step(job)
    finally:
        clear_open_trees()


def _step_name(index: int, job: StepJob) -> str:
    return f"read step {index} ({job.step.path.name}, entries {job.step.start}-{job.step.stop})"


def _results(jobs: list[StepJob], executor: DaskExecutor | LocalExecutor | None = None) -> Iterator[StepResult]:
    """Step results in input order, computed in-process, by local worker processes, or as Dask tasks."""
    if executor is None:
        yield from map(process_step, jobs)
        return
    task = process_step if isinstance(executor, LocalExecutor) else process_step_on_worker
    yield from executor.in_order(task, jobs, [_step_name(i, j) for i, j in enumerate(jobs)])


def drop_nonfinite(table: dict[str, np.ndarray], columns: list[str]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Remove rows with NaN or inf in `columns`; count them per column."""
    bad = {c: ~np.isfinite(table[c]) for c in columns}
    counts = {c: int(b.sum()) for c, b in bad.items() if b.any()}
    if not counts:
        return table, counts
    keep = ~np.logical_or.reduce([bad[c] for c in counts])
    return {k: v[keep] for k, v in table.items()}, counts


def run_prepare(params: PrepareParams, inputs: list[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
                metrics_path: str | os.PathLike[str] | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Run the stage; return the cutflow metrics (also written to `metrics_path`)."""
    schema = SCHEMAS[params.schema_name]
    check_not_protected(out_dir)
    files = discover_inputs(inputs)
    out_dir = check_output_dir(out_dir, "prepare", [*inputs, *files], overwrite)
    if metrics_path is not None:
        check_output_file(metrics_path, [*inputs, *files, out_dir])
    check_distinct(files)
    clear_open_trees()
    trees = [cached_tree(path, params.tree) for path in files]
    for path, tree in zip(files, trees, strict=True):
        check_branches(path, tree, schema)
        check_weights(path, tree, schema)
    truth = has_truth(trees[0], schema)
    neutrinos = truth and neutrinos_in_all(files, trees)
    written = truth_names(truth, neutrinos)
    columns = feature_columns(params.feature_sets, params.max_jets)
    metadata = {
        "schema": schema.name,
        "units_in": params.units,
        "truth": truth,
        "features": columns,
        "feature_sets": {name: set_columns(name, params.max_jets) for name in params.feature_sets},
        "target": TARGET if truth else None,
        "diagnostics": DIAGNOSTICS if truth else [],
        "neutrinos": NEUTRINOS if neutrinos else [],
        "units": {c: unit(c) for c in [*columns, *written]},
        "sources": {},  # filled from the background hashing below, before the first row is written
        "selection": params.selection.model_dump(mode="json"),
        "nanoaod": params.nanoaod.model_dump(mode="json"),
        "max_jets": params.max_jets,
        "split": params.split.model_dump(),
        "generator": generator_record(files),  # the process (sm, or a Z' with its mass) when simulate made them
    }
    if not truth:
        print(f"prepare: no truth in {files[0]} (schema {schema.name!r}): truth-less mode, features only")
    cutflow, nonfinite, b_match, nonfinite_inputs = dict.fromkeys(CUTS, 0), {}, {}, {}
    jobs = [StepJob(step, params, truth, tuple(columns), neutrinos)
            for step in plan_steps(files, trees, params.step_size)]
    workers = resolve_workers(params.workers, len(jobs))
    start = time.perf_counter()
    # the Dask executor connects (or starts its LocalCluster) before any step runs, and stops before the
    # temporary folder is removed, so no worker is left writing into it
    # the local workers are forked before the hashing thread starts
    with (atomic_dir(out_dir, "prepare") as tmp,
          stage_executor(params, workers, "prepare", __name__, local=True) as executor,
          ThreadPoolExecutor(1) as hasher):
        hashes = [hasher.submit(file_sha256, p) for p in files]  # hashlib releases the GIL: overlaps the work

        def sources() -> dict[str, str]:
            # relative to the working folder (as dvc.yaml gives them): the same run in another clone, same bytes
            found = {portable_path(p): h.result() for p, h in zip(files, hashes, strict=True)}
            check_distinct_content(found)
            return found

        writers = SplitWriters(tmp, lambda: {METADATA_KEY: json.dumps({**metadata, "sources": sources()}).encode()})
        for result in _results(jobs, executor):
            for total, part in ((cutflow, result.cutflow), (nonfinite, result.nonfinite), (b_match, result.b_match),
                                (nonfinite_inputs, result.nonfinite_inputs)):
                _add(total, part)
            writers.write(result.parts)
        report_nonfinite_inputs(cutflow, nonfinite_inputs, params.max_nonfinite_fraction, "prepare", PrepareError)
        selected = cutflow[CUTS[-1]]
        if selected == 0:
            raise PrepareError(f"no events pass the selection in {len(files)} file(s):\n{format_cutflow(cutflow)}")
        rows_dropped = selected - sum(writers.rows.values())
        if rows_dropped:
            print(f"prepare: dropped {rows_dropped} selected event(s) with NaN/inf values: {nonfinite}")
        if rows_dropped > params.max_nonfinite_fraction * selected:
            raise PrepareError(
                f"{rows_dropped} of {selected} selected events have NaN/inf values ({nonfinite}), more than "
                f"prepare.max_nonfinite_fraction = {params.max_nonfinite_fraction}")
        writers.close()
        check_unique_ids(tmp)
        print(format_cutflow(cutflow))
        metrics = cutflow_metrics(cutflow, nonfinite, writers.rows, truth, nonfinite_inputs)
        if b_match:
            metrics["b_candidates"] = match_summary(b_match)
            print("prepare: b-jet candidates are the jets of the true b quarks in "
                  f"{metrics['b_candidates']['b_candidates_correct']:.1%} of selected events (both b quarks have a "
                  f"selected jet in {metrics['b_candidates']['b_jets_available']:.1%})")
    seconds = time.perf_counter() - start
    if metrics_path is not None:
        write_json(metrics_path, metrics)
    return {**metrics, "seconds": seconds, "events_per_second": cutflow["all"] / seconds if seconds else 0.0,
            "executor": f"dask at {executor.address}" if isinstance(executor, DaskExecutor) else "local"}


def main(params: PrepareParams, inputs: list[str], out_dir: str, metrics_path: str | None,
         overwrite: bool = False) -> dict[str, Any]:
    """Stage entry: run and print a one-line summary."""
    summary = run_prepare(params, inputs, out_dir, metrics_path, overwrite)
    splits = ", ".join(f"{k} {v}" for k, v in summary["splits"].items())
    print(f"prepare: {summary['cutflow']['all']['events']} events read, "
          f"{summary['cutflow'][CUTS[-1]]['events']} selected ({splits}) -> {out_dir} "
          f"({summary['events_per_second']:.0f} events/s, {summary['executor']})")
    return summary
