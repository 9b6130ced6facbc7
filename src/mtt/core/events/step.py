"""One read step of ROOT input to the selected events and their features: what prepare and predict both run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import awkward as ak
import numpy as np

from mtt.core.errors import MttError
from mtt.core.events.features import build_table
from mtt.core.events.inputs import Step, check_jagged, nonfinite_masks, read_step
from mtt.core.events.params import PrepareParams
from mtt.core.events.schemas import SCHEMAS, Schema, to_objects
from mtt.core.events.selection import Candidates, select


@dataclass
class SelectedEvents:
    """The events of one step that pass the selection: their entry numbers in the input file (so predictions
    can go back to the input's order), feature columns, raw arrays (for truth matching) and b candidates."""

    entries: np.ndarray
    table: dict[str, np.ndarray]
    arrays: ak.Array
    candidates: Candidates
    cutflow: dict[str, int]
    #: per checked branch, the events of the step with a NaN or inf in it (all counted, set aside or not)
    nonfinite: dict[str, int]


def finite_inputs(arrays: ak.Array, schema: Schema, weighted: bool) -> tuple[np.ndarray, dict[str, int]]:
    """Per event: no NaN/inf in the objects' and MET's branches (and in genWeight if `weighted`); per branch
    checked (genWeight always): how many events hold one."""
    weight = schema.event["weight"]
    masks = nonfinite_masks(arrays, [*schema.object_branches(), weight])
    bad = np.zeros(len(arrays), dtype=bool)
    for branch, mask in masks.items():
        if weighted or branch != weight:
            bad |= mask
    return ~bad, {branch: int(mask.sum()) for branch, mask in masks.items()}


def select_step(step: Step, params: PrepareParams, truth: bool, columns: Sequence[str],
                extra_branches: Sequence[str] = (), weighted: bool = True) -> SelectedEvents:
    """Read, set aside (and count) events with NaN/inf inputs, map to canonical objects, select, build the
    feature columns of one step. `weighted`: the weight is written, so an event with a NaN weight is set aside."""
    schema = SCHEMAS[params.schema_name]
    arrays = read_step(step, params.tree, [*schema.branches(truth), *extra_branches])
    check_jagged(step.path, arrays, schema, step.start)
    n_all = len(arrays)
    finite, nonfinite = finite_inputs(arrays, schema, weighted)
    # events with fewer than two leptons of any quality cannot pass: skip building their objects
    two_leptons = finite & ak.to_numpy(ak.num(arrays[schema.electron["pt"]]) + ak.num(arrays[schema.muon["pt"]]) >= 2)
    arrays = arrays[two_leptons]
    objects = to_objects(arrays, schema, params.units, params.nanoaod, truth)
    passed, cutflow, candidates = select(objects, params.selection)
    cutflow["all"], cutflow["finite_inputs"] = n_all, int(finite.sum())
    tops = objects.tops[passed] if objects.tops is not None else None
    ids = {k: v[passed] for k, v in objects.ids.items()}
    table = build_table(candidates, list(columns), ids, objects.weight[passed], tops, params.feature_sets,
                        params.max_jets)
    entries = step.start + np.flatnonzero(two_leptons)[passed]
    return SelectedEvents(entries, table, arrays[passed], candidates, cutflow, nonfinite)


def branch_counts(by_branch: dict[str, int]) -> str:
    """`Jet_pt 3, MET_pt 1`: the branches that hold NaN/inf with their event counts, for messages."""
    return ", ".join(f"{branch} {n}" for branch, n in by_branch.items() if n)


def report_nonfinite_inputs(cutflow: dict[str, int], by_branch: dict[str, int], limit: float, stage: str,
                            error: type[MttError], unused: Sequence[str] = ()) -> int:
    """Print how many events have NaN/inf inputs (per branch) and refuse more than `limit` of the events read
    (prepare.max_nonfinite_fraction); return how many were set aside (`unused` branches are only counted)."""
    total = cutflow["all"]
    n_bad = total - cutflow.get("finite_inputs", total)
    if any(by_branch.values()):
        counted_only = [b for b in unused if by_branch.get(b)]
        note = f"; {', '.join(counted_only)} not used by {stage}: counted, not set aside" if counted_only else ""
        print(f"{stage}: {n_bad} of {total} events have NaN/inf inputs and are set aside before the selection "
              f"(cutflow line finite_inputs); events per branch: {branch_counts(by_branch)}{note}")
    if n_bad > limit * total:
        raise error(f"{n_bad} of {total} events read have NaN/inf inputs ({branch_counts(by_branch)}), more than "
                    f"prepare.max_nonfinite_fraction = {limit:g}: look at how the input files were made")
    return n_bad
