"""`prepare` stage: ROOT files (ours or CMS NanoAOD) -> selected events, features, train/val/test Parquet.

Files are read in steps of `prepare.step_size` events, so peak memory does not grow with the number of
input files. Every input is checked (readable ROOT, the tree, the schema's branches) before any work.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import uproot

from mtt.config import PrepareParams
from mtt.io import atomic_dir, atomic_file, check_writable_dir
from mtt.prepare.features import DIAGNOSTICS, FEATURE_SETS, TARGET, build_table, feature_columns, unit
from mtt.prepare.schemas import NANOAOD, SCHEMAS, Schema, to_objects
from mtt.prepare.selection import CUTS, select
from mtt.prepare.split import SPLITS, assign
from mtt.workers import resolve_workers

METADATA_KEY = b"mtt"
#: dictionary-encode only the channel label: float features gain nothing from it, and it costs 2.7x the
#: write time and 35% more bytes (measured on prepared tt events)
PARQUET_OPTIONS = {"use_dictionary": ["channel"], "compression": "snappy"}


class PrepareError(ValueError):
    """Bad input to prepare, named with the file, tree, branch or cut."""


def discover_inputs(inputs: list[str | os.PathLike[str]]) -> list[Path]:
    """ROOT files from a list of files and folders (a folder contributes its *.root, sorted)."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(path.glob("*.root"))
            if not found:
                raise PrepareError(f"{path}: folder holds no .root files")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise PrepareError(f"{path}: input not found")
    return files


def open_tree(path: Path, tree_name: str) -> Any:
    """The input tree, or a PrepareError that names the file and what is wrong with it."""
    try:
        root_file = uproot.open(path)
    except Exception as exc:  # uproot raises many kinds for truncated or foreign files
        raise PrepareError(f"{path}: not a readable ROOT file ({type(exc).__name__}: {exc})") from None
    if tree_name not in root_file:
        keys = ", ".join(sorted({k.split(";")[0] for k in root_file.keys()})) or "nothing"  # noqa: SIM118
        raise PrepareError(f"{path}: no tree {tree_name!r} (the file holds: {keys})")
    return root_file[tree_name]


def check_branches(path: Path, tree: Any, schema: Schema) -> None:
    """Fail with the list of missing branches and the schema that expected them."""
    missing = [b for b in schema.required() if b not in tree]
    if missing:
        raise PrepareError(f"{path}: missing branches for schema {schema.name!r}: {', '.join(missing)}")


def has_truth(tree: Any, schema: Schema) -> bool:
    """True if the truth branches exist (and, for NanoAOD, the generator record holds top quarks)."""
    if any(b not in tree for b in schema.truth.values()):
        return False
    if schema is NANOAOD:
        pdg = tree[schema.truth["pdg_id"]].array(entry_stop=1000)
        return bool(ak.any(abs(pdg) == 6))
    return True


def check_jagged(path: Path, arrays: ak.Array, schema: Schema, first_entry: int) -> None:
    """Fields of one collection must have the same length in every event."""
    for mapping in (schema.electron, schema.muon, schema.jet):
        branches = [b for b in mapping.values() if b in arrays.fields]
        reference = ak.num(arrays[branches[0]])
        for branch in branches[1:]:
            bad = np.flatnonzero(ak.to_numpy(ak.num(arrays[branch]) != reference))
            if bad.size:
                raise PrepareError(
                    f"{path}: branches {branches[0]} and {branch} have different lengths in entry "
                    f"{first_entry + bad[0]} ({reference[bad[0]]} vs {ak.num(arrays[branch])[bad[0]]}); "
                    f"{bad.size} such entries in this step")


@dataclass(frozen=True)
class Step:
    """A range of entries of one input file: the unit of work of a prepare worker."""

    path: Path
    start: int
    stop: int


def plan_steps(files: list[Path], trees: list[Any], step_size: int) -> list[Step]:
    """Every file cut into ranges of at most `step_size` entries, in file order."""
    return [Step(path, start, min(start + step_size, tree.num_entries))
            for path, tree in zip(files, trees, strict=True) for start in range(0, tree.num_entries, step_size)]


#: trees opened by the main process for its checks; forked workers inherit them instead of re-opening
_OPEN_TREES: dict[tuple[Path, str], Any] = {}


def _cached_tree(path: Path, tree_name: str) -> Any:
    key = (path, tree_name)
    if key not in _OPEN_TREES:
        _OPEN_TREES[key] = open_tree(path, tree_name)
    return _OPEN_TREES[key]


def read_step(step: Step, tree_name: str, branches: list[str]) -> ak.Array:
    """The step's branches; a read failure (truncated, corrupt) names the file and the entries."""
    tree = _cached_tree(step.path, tree_name)
    try:
        # no array cache: each range is read once, and a cache per open file would grow with the file count
        return tree.arrays([b for b in branches if b in tree], entry_start=step.start, entry_stop=step.stop,
                           library="ak", array_cache=None)
    except Exception as exc:  # uproot/awkward raise many kinds for damaged baskets
        raise PrepareError(f"{step.path}: cannot read entries {step.start}-{step.stop} (truncated or corrupt "
                           f"file?): {type(exc).__name__}: {exc}") from None


@dataclass(frozen=True)
class StepJob:
    """What a worker needs to turn one step into rows of the output table."""

    step: Step
    params: PrepareParams
    truth: bool
    columns: tuple[str, ...]


@dataclass
class StepResult:
    """Cutflow counts, the selected rows of each split (Arrow tables), dropped non-finite counts of one step."""

    cutflow: dict[str, int]
    parts: dict[str, pa.Table]
    nonfinite: dict[str, int]


def process_step(job: StepJob) -> StepResult:
    """Read, map to canonical objects, select, build features, drop non-finite rows, assign splits."""
    params = job.params
    schema = SCHEMAS[params.schema_name]
    arrays = read_step(job.step, params.tree, schema.branches(job.truth))
    check_jagged(job.step.path, arrays, schema, job.step.start)
    # events with fewer than two leptons of any quality cannot pass: skip building their objects
    n_leptons = ak.num(arrays[schema.electron["pt"]]) + ak.num(arrays[schema.muon["pt"]])
    objects = to_objects(arrays[ak.to_numpy(n_leptons >= 2)], schema, params.units, params.nanoaod, job.truth)
    passed, cutflow, candidates = select(objects, params.selection)
    cutflow["all"] = len(arrays)
    tops = objects.tops[passed] if objects.tops is not None else None
    ids = {k: v[passed] for k, v in objects.ids.items()}
    table = build_table(candidates, list(job.columns), ids, objects.weight[passed], tops)
    checked = [*job.columns, *([TARGET, *DIAGNOSTICS] if job.truth else [])]
    table, nonfinite = drop_nonfinite(table, checked)
    splits = assign(table["run"], table["luminosityBlock"], table["event"], params.split)
    whole = pa.table(table)
    parts = {name: whole.filter(pa.array(splits == name)) for name in SPLITS}
    return StepResult(cutflow, parts, nonfinite)


def _results(jobs: list[StepJob], workers: int) -> Iterator[StepResult]:
    """Step results in input order, computed in-process or by a pool of worker processes."""
    if workers == 1:
        yield from map(process_step, jobs)
        return
    with mp.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(process_step, jobs)


def file_sha256(path: Path) -> str:
    """Content hash of an input file, recorded with the output."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def drop_nonfinite(table: dict[str, np.ndarray], columns: list[str]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Remove rows with NaN or inf in `columns`; count them per column."""
    bad = {c: ~np.isfinite(table[c]) for c in columns}
    counts = {c: int(b.sum()) for c, b in bad.items() if b.any()}
    if not counts:
        return table, counts
    keep = ~np.logical_or.reduce([bad[c] for c in counts])
    return {k: v[keep] for k, v in table.items()}, counts


@dataclass
class SplitWriters:
    """One Parquet writer per split, opened on first use; all files share one schema and metadata."""

    folder: Path
    metadata: Callable[[], dict[bytes, bytes]]
    writers: dict[str, pq.ParquetWriter] = field(default_factory=dict)
    schema: pa.Schema | None = None
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))

    def write(self, parts: dict[str, pa.Table]) -> None:
        for name, part in parts.items():
            if self.schema is None:
                self.schema = part.schema.with_metadata(self.metadata())
            if part.num_rows == 0:
                continue
            if name not in self.writers:
                self.writers[name] = pq.ParquetWriter(self.folder / f"{name}.parquet", self.schema, **PARQUET_OPTIONS)
            self.writers[name].write_table(part.replace_schema_metadata(self.schema.metadata))
            self.rows[name] += part.num_rows

    def close(self) -> None:
        assert self.schema is not None
        for name in SPLITS:
            if name in self.writers:
                self.writers[name].close()
            else:  # an empty split still gets a file with the schema
                pq.write_table(self.schema.empty_table(), self.folder / f"{name}.parquet", **PARQUET_OPTIONS)


def format_cutflow(cutflow: dict[str, int]) -> str:
    """A readable cutflow table: events, efficiency of each cut, cumulative efficiency."""
    lines = [f"{'cut':20s}{'events':>10s}{'eff':>8s}{'cumul':>8s}"]
    previous = total = cutflow["all"]
    for name in CUTS:
        n = cutflow[name]
        eff = n / previous if previous else 0.0
        cumul = n / total if total else 0.0
        lines.append(f"{name:20s}{n:10d}{eff:8.3f}{cumul:8.3f}")
        previous = n
    return "\n".join(lines)


def cutflow_metrics(cutflow: dict[str, int], nonfinite: dict[str, int], rows: dict[str, int],
                    truth: bool) -> dict[str, Any]:
    """The DVC metric: events and efficiencies after each cut, dropped non-finite rows, split sizes."""
    total = cutflow["all"] or 1
    previous = cutflow["all"] or 1
    steps = {}
    for name in CUTS:
        steps[name] = {"events": cutflow[name], "efficiency": cutflow[name] / previous,
                       "cumulative": cutflow[name] / total}
        previous = cutflow[name] or 1
    dropped = cutflow[CUTS[-1]] - sum(rows.values())
    return {"cutflow": steps, "nonfinite_dropped": dropped, "nonfinite_by_column": nonfinite, "splits": rows,
            "truth": truth}


def run_prepare(params: PrepareParams, inputs: list[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
                metrics_path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Run the stage; return the cutflow metrics (also written to `metrics_path`)."""
    schema = SCHEMAS[params.schema_name]
    files = discover_inputs(inputs)
    _OPEN_TREES.clear()
    trees = [_cached_tree(path, params.tree) for path in files]
    for path, tree in zip(files, trees, strict=True):
        check_branches(path, tree, schema)
    truth = has_truth(trees[0], schema)
    out_dir = check_writable_dir(out_dir)
    columns = feature_columns(params.feature_sets)
    metadata = {
        "schema": schema.name,
        "units_in": params.units,
        "truth": truth,
        "features": columns,
        "feature_sets": {name: FEATURE_SETS[name] for name in params.feature_sets},
        "target": TARGET if truth else None,
        "diagnostics": DIAGNOSTICS if truth else [],
        "units": {c: unit(c) for c in [*columns, *([TARGET, *DIAGNOSTICS] if truth else [])]},
        "sources": {},  # filled from the background hashing below, before the first row is written
        "selection": params.selection.model_dump(mode="json"),
        "split": params.split.model_dump(),
    }
    if not truth:
        print(f"prepare: no truth in {files[0]} (schema {schema.name!r}): truth-less mode, features only")
    cutflow = dict.fromkeys(CUTS, 0)
    nonfinite: dict[str, int] = {}
    jobs = [StepJob(step, params, truth, tuple(columns)) for step in plan_steps(files, trees, params.step_size)]
    workers = resolve_workers(params.workers, len(jobs))
    start = time.perf_counter()
    with atomic_dir(out_dir) as tmp, ThreadPoolExecutor(1) as hasher:
        hashes = [hasher.submit(file_sha256, p) for p in files]  # hashlib releases the GIL: overlaps the work
        writers = SplitWriters(tmp, lambda: {METADATA_KEY: json.dumps(
            {**metadata, "sources": {str(p): h.result() for p, h in zip(files, hashes, strict=True)}}).encode()})
        for result in _results(jobs, workers):
            for name, n in result.cutflow.items():
                cutflow[name] += n
            for name, n in result.nonfinite.items():
                nonfinite[name] = nonfinite.get(name, 0) + n
            writers.write(result.parts)
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
        print(format_cutflow(cutflow))
        metrics = cutflow_metrics(cutflow, nonfinite, writers.rows, truth)
    seconds = time.perf_counter() - start
    if metrics_path is not None:
        with atomic_file(metrics_path) as tmp_metrics:
            tmp_metrics.write_text(json.dumps(metrics, indent=2) + "\n")
    return {**metrics, "seconds": seconds, "events_per_second": cutflow["all"] / seconds if seconds else 0.0}


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata prepare stored with a Parquet split (features, units, sources, selection)."""
    return json.loads(pq.read_schema(path).metadata[METADATA_KEY])


def main(params: PrepareParams, inputs: list[str], out_dir: str, metrics_path: str | None) -> dict[str, Any]:
    """Stage entry: run and print a one-line summary."""
    summary = run_prepare(params, inputs, out_dir, metrics_path)
    splits = ", ".join(f"{k} {v}" for k, v in summary["splits"].items())
    print(f"prepare: {summary['cutflow']['all']['events']} events read, "
          f"{summary['cutflow'][CUTS[-1]]['events']} selected ({splits}) -> {out_dir} "
          f"({summary['events_per_second']:.0f} events/s)")
    return summary
