"""What the sweep and tune tests share: quick params for real tiny runs, the children's paths, a parent's children.

The slow tests run the real thing on the `small_prepared` sample: the sweep or study makes the parent run in this
process and every child runs `python -m mtt train` and `python -m mtt evaluate` in subprocesses, logging into
a temporary SQLite store (`store`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mtt.tools.sweep.children import StagePaths

PARAMS = Path(__file__).resolve().parents[3] / "params.yaml"


@pytest.fixture
def quick_params(tmp_path: Path) -> Path:
    """params.yaml with evaluate's unfolding off (seconds per child on this tiny sample) and a small search."""
    raw = yaml.safe_load(PARAMS.read_text())
    raw["evaluate"]["unfold"] = False
    raw["tune"] = {"n_trials": 2, "seed": 1, "timeout_s": 0.0,
                   "space": {"width": {"low": 8, "high": 32, "log": True},
                             "learning_rate": {"low": 0.001, "high": 0.01, "log": True},
                             "schedule": {"choices": ["constant", "cosine"]}}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def stage_paths() -> Callable[[Path, Path, Path], StagePaths]:
    """The children's paths from params, a prepared sample (its reference beside it) and the out folder."""

    def paths(params: Path, prepared: Path, out: Path) -> StagePaths:
        return StagePaths(params=params, prepared=prepared, reference=prepared.parent / "reference", out=out)

    return paths


@pytest.fixture
def child_runs() -> Callable[[Any, Any], dict[str, Any]]:
    """A parent run's children in the store, by run name."""

    def children(store: Any, parent: Any) -> dict[str, Any]:
        runs = store.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
        return {run.info.run_name: run for run in runs}

    return children
