"""Reading the ROOT inputs of prepare: finding files, checking trees and branches, reading entry ranges.

Every input is checked (readable ROOT, the tree, the schema's branches) before any work; a read failure
later names the file and the entries.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from mtt.core.errors import PrepareError
from mtt.core.events.schemas import NANOAOD, Schema
from mtt.core.io import SIMULATION_MANIFEST


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


def generator_record(files: list[Path]) -> dict[str, Any] | None:
    """The process behind the inputs, from simulate's manifest next to them (None for files from elsewhere)."""
    folders = {path.resolve().parent for path in files}
    manifests = [folder / SIMULATION_MANIFEST for folder in sorted(folders)]
    if len(manifests) != 1 or not manifests[0].is_file():
        return None
    try:
        params = json.loads(manifests[0].read_text())["params"]
    except (OSError, ValueError, KeyError) as exc:
        raise PrepareError(f"{manifests[0]}: not a readable simulate manifest ({exc})") from None
    record = {"process": params.get("process", "sm"), "seed": params.get("seed"), "level": params.get("level")}
    if record["process"] == "zprime":
        record["zprime"] = params.get("zprime")
    return record


def check_distinct(files: list[Path]) -> None:
    """The same file twice (a folder given twice, or a file and its folder) would double every event."""
    seen: dict[Path, Path] = {}
    for path in files:
        real = path.resolve()
        if real in seen:
            raise PrepareError(f"{path}: given twice as input (also as {seen[real]}): every event would be counted "
                               "twice")
        seen[real] = path


def check_distinct_content(hashes: dict[str, str]) -> None:
    """Two inputs with the same content (a copy under another name) would double their events."""
    first: dict[str, str] = {}
    for path, digest in hashes.items():
        if digest in first:
            raise PrepareError(f"{path}: same content (SHA-256 {digest[:12]}...) as {first[digest]}: every event "
                               "would be counted twice; drop one of the copies")
        first[digest] = path


def open_tree(path: Path, tree_name: str) -> Any:
    """The input tree, or a PrepareError that names the file and what is wrong with it."""
    try:
        root_file = uproot.open(path)
    except Exception as exc:  # uproot raises many kinds for truncated or foreign files
        raise PrepareError(f"{path}: not a readable ROOT file ({type(exc).__name__}: {exc})") from None
    if tree_name not in root_file:
        keys = ", ".join(sorted({k.split(";")[0] for k in root_file.keys()})) or "nothing"  # noqa: SIM118
        raise PrepareError(f"{path}: no tree {tree_name!r} (the file holds: {keys})")
    tree = root_file[tree_name]
    if not isinstance(tree, uproot.TTree):
        raise PrepareError(f"{path}: {tree_name!r} is a {tree.classname}, not a TTree of events; give the tree's "
                           "name with -S tree=<name>")
    return tree


def check_branches(path: Path, tree: Any, schema: Schema) -> None:
    """Fail with the list of missing branches and the schema that expected them."""
    missing = [b for b in schema.required() if b not in tree]
    if missing:
        raise PrepareError(f"{path}: missing branches for schema {schema.name!r}: {', '.join(missing)}")
    collections = {*schema.electron.values(), *schema.muon.values(), *schema.jet.values()}
    for branch in schema.branches(with_truth=False):
        if branch not in tree:
            continue
        interpretation = tree[branch].interpretation
        scalar = isinstance(interpretation, uproot.AsDtype) and interpretation.inner_shape == ()
        if not (isinstance(interpretation, uproot.AsJagged) if branch in collections else scalar):
            expected = "one value per object (a jagged branch)" if branch in collections else "one value per event"
            raise PrepareError(f"{path}: branch {branch} holds {tree[branch].typename}, where schema "
                               f"{schema.name!r} expects {expected}")


def check_weights(path: Path, tree: Any, schema: Schema) -> None:
    """A sample whose generator weights are all NaN/inf cannot be weighted: refuse it before any work (one
    branch of 4 bytes an event is read)."""
    branch = schema.event["weight"]
    if branch not in tree or tree.num_entries == 0:
        return
    try:
        weights = np.asarray(tree[branch].array(library="np"), dtype=np.float64)
    except Exception as exc:  # uproot raises many kinds for damaged baskets
        raise PrepareError(f"{path}: cannot read entries 0-{tree.num_entries} of branch {branch} (truncated or corrupt "
                           f"file?): {type(exc).__name__}: {' '.join(str(exc).split())}") from None
    if not np.isfinite(weights).any():
        raise PrepareError(f"{path}: branch {branch} holds no finite value ({weights.size} entries, all NaN or inf): "
                           "the sample's weights are broken; regenerate the file or leave it out of the inputs")


def nonfinite_masks(arrays: ak.Array, branches: list[str]) -> dict[str, np.ndarray]:
    """Per floating-point branch among `branches` (flat or one value per object): which events hold a NaN or
    inf in it. A cut like `pt > 20` is False for NaN, so such values must be found before any cut."""
    masks = {}
    for branch in branches:
        if branch not in arrays.fields:
            continue
        values = arrays[branch]
        flat = ak.to_numpy(ak.ravel(values))
        if flat.dtype.kind != "f":
            continue  # integers and booleans have no NaN
        if np.isfinite(flat).all():
            masks[branch] = np.zeros(len(values), dtype=bool)
        elif values.ndim == 1:
            masks[branch] = ~np.isfinite(flat)
        else:
            masks[branch] = ak.to_numpy(ak.any(~np.isfinite(values), axis=1))
    return masks


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


def cached_tree(path: Path, tree_name: str) -> Any:
    """The open tree, opened once per process (forked workers inherit the parent's)."""
    key = (path, tree_name)
    if key not in _OPEN_TREES:
        _OPEN_TREES[key] = open_tree(path, tree_name)
    return _OPEN_TREES[key]


def clear_open_trees() -> None:
    """Forget the trees of an earlier run in this process."""
    _OPEN_TREES.clear()


def read_step(step: Step, tree_name: str, branches: list[str]) -> ak.Array:
    """The step's branches; a read failure (truncated, corrupt) names the file and the entries."""
    tree = cached_tree(step.path, tree_name)
    try:
        # no array cache: each range is read once, and a cache per open file would grow with the file count
        return tree.arrays([b for b in branches if b in tree], entry_start=step.start, entry_stop=step.stop,
                           library="ak", array_cache=None)
    except Exception as exc:  # uproot/awkward raise many kinds for damaged baskets
        raise PrepareError(f"{step.path}: cannot read entries {step.start}-{step.stop} (truncated or corrupt "
                           f"file?): {type(exc).__name__}: {exc}") from None

