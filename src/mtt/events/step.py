"""One read step of ROOT input to the selected events and their features: what prepare and predict both run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import awkward as ak
import numpy as np

from mtt.config import PrepareParams
from mtt.events.features import build_table
from mtt.events.inputs import Step, check_jagged, read_step
from mtt.events.schemas import SCHEMAS, to_objects
from mtt.events.selection import Candidates, select


@dataclass
class SelectedEvents:
    """The events of one step that pass the selection: their entry numbers in the input file (so predictions
    can go back to the input's order), feature columns, raw arrays (for truth matching) and b candidates."""

    entries: np.ndarray
    table: dict[str, np.ndarray]
    arrays: ak.Array
    candidates: Candidates
    cutflow: dict[str, int]


def select_step(step: Step, params: PrepareParams, truth: bool, columns: Sequence[str],
                extra_branches: Sequence[str] = ()) -> SelectedEvents:
    """Read, map to canonical objects, select, build the feature columns of one step."""
    schema = SCHEMAS[params.schema_name]
    arrays = read_step(step, params.tree, [*schema.branches(truth), *extra_branches])
    check_jagged(step.path, arrays, schema, step.start)
    # events with fewer than two leptons of any quality cannot pass: skip building their objects
    n_all = len(arrays)
    two_leptons = ak.to_numpy(ak.num(arrays[schema.electron["pt"]]) + ak.num(arrays[schema.muon["pt"]]) >= 2)
    arrays = arrays[two_leptons]
    objects = to_objects(arrays, schema, params.units, params.nanoaod, truth)
    passed, cutflow, candidates = select(objects, params.selection)
    cutflow["all"] = n_all
    tops = objects.tops[passed] if objects.tops is not None else None
    ids = {k: v[passed] for k, v in objects.ids.items()}
    table = build_table(candidates, list(columns), ids, objects.weight[passed], tops, params.feature_sets,
                        params.max_jets)
    entries = step.start + np.flatnonzero(two_leptons)[passed]
    return SelectedEvents(entries, table, arrays[passed], candidates, cutflow)
