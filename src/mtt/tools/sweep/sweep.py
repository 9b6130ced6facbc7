"""`mtt sweep -S n_train=1e4,3e4,1e5`: train and evaluate once per value of one train param, each value a child
run of one parent; every value is typed and checked before the first child starts."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtt.core.errors import ParamsError
from mtt.core.params import parse_overrides
from mtt.tools.params import load_params
from mtt.tools.sweep.children import Child, StagePaths, parent_run, report, run_child
from mtt.tools.sweep.overrides import parse_value, split_overrides, yaml_text
from mtt.tools.sweep.results import finish_parent


@dataclass(frozen=True)
class Sweep:
    """One train param, its typed values and their `-S` texts, and the overrides every child shares."""

    param: str
    values: tuple[Any, ...]
    texts: tuple[str, ...]
    fixed: tuple[str, ...]

    @property
    def name(self) -> str:
        """The parent run's name: what is swept (and what is fixed)."""
        return " ".join([f"sweep {self.param}={','.join(self.texts)}", *self.fixed])

    def label(self, text: str) -> str:
        """A child's run name and folder name: `<param>=<value>`."""
        return f"{self.param}={text}"


def plan_sweep(params_path: str | os.PathLike[str], overrides: Sequence[str]) -> Sweep:
    """Type and check every child's train params before any run starts, so a bad value stops the sweep at once."""
    param, listed, fixed = split_overrides(overrides)
    shared = parse_overrides(fixed, "train")
    if param in shared:
        raise ParamsError(f"mtt sweep: {param} is both swept and fixed")
    values = [parse_value(param, text) for text in listed]
    texts = [yaml_text(value) for value in values]
    repeated = sorted({text for text in texts if texts.count(text) > 1})
    if repeated:
        raise ParamsError(f"mtt sweep: {param}: repeated value(s) {', '.join(repeated)}")
    for value, text in zip(values, texts, strict=True):
        try:
            load_params(params_path, "train", {**shared, param: value})
        except ParamsError as exc:
            raise ParamsError(f"mtt sweep: {param}={text}: {exc}") from None
    return Sweep(param, tuple(values), tuple(texts), tuple(fixed))


def _folder_name(label: str) -> str:
    """A child's folder: its label, with no path separator that would nest it (feature_set=a/b)."""
    return label.replace("/", "_").replace(os.sep, "_")


def run_sweep(overrides: Sequence[str], paths: StagePaths) -> list[dict[str, Any]]:
    """Train and evaluate once per value of one train param, each a child of one parent run; the table."""
    sweep = plan_sweep(paths.params, overrides)
    experiment = load_params(paths.params, "train", parse_overrides(list(sweep.fixed), "train")).experiment
    out = paths.out or Path("sweeps") / sweep.param
    paths.check_out(out)
    tags = {"mtt.sweep.param": sweep.param, "mtt.sweep.values": ",".join(sweep.texts),
            "mtt.sweep.fixed": " ".join(sweep.fixed)}
    rows: list[dict[str, Any]] = []
    with parent_run(experiment, sweep.name, tags) as parent:
        print(f"sweep: run {parent.run_id}: {len(sweep.values)} child runs, outputs in {out}", flush=True)
        for value, text in zip(sweep.values, sweep.texts, strict=True):
            label = sweep.label(text)
            child = Child(label, (*sweep.fixed, label), {f"sweep.{sweep.param}": text}, out / _folder_name(label))
            result = run_child(parent, child, paths)
            report(child, result)
            rows.append({"value": value, **result.row()})
        finish_parent(rows, out, "sweep", sweep.param)
    return rows
