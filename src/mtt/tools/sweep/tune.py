"""`mtt tune`: Optuna's seeded TPE search over params.yaml's `tune.space`, every trial a child run of one parent;
the objective is the trial's val resolution at the best epoch."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtt.core.errors import ParamsError
from mtt.core.params import parse_overrides
from mtt.stages.train.params import TrainParams
from mtt.tools.params import load_params
from mtt.tools.sweep.children import Child, Parent, StagePaths, parent_run, report, run_child
from mtt.tools.sweep.overrides import fixed_overrides, yaml_text
from mtt.tools.sweep.results import finish_parent
from mtt.tools.tune_params import SearchDimension, TuneParams


def suggest(trial: Any, space: dict[str, SearchDimension]) -> dict[str, Any]:
    """The trial's train params from the search space (integers for integer train params)."""
    values: dict[str, Any] = {}
    for name, dimension in space.items():
        if dimension.choices is not None:
            values[name] = trial.suggest_categorical(name, dimension.choices)
        elif TrainParams.model_fields[name].annotation is int:
            low, high = dimension.values(name)
            values[name] = trial.suggest_int(name, low, high, log=dimension.log)
        else:
            values[name] = trial.suggest_float(name, dimension.low, dimension.high, log=dimension.log)
    return values


@dataclass
class Study:
    """What every trial shares: the parent, the fixed train overrides, the paths, and the rows so far."""

    tune: TuneParams
    fixed: tuple[str, ...]
    paths: StagePaths
    out: Path
    parent: Parent | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)

    def objective(self, trial: Any) -> float:
        """One trial: a child run; its val resolution at the best epoch (NaN, a failed trial, if it failed).

        The objective is train's `final/val_resolution`, the resolution on the val split of the weights of the
        epoch with the lowest val loss, which train restores before it logs it. It is a validation figure on
        purpose: the test split stays untouched by the choice, so the chosen model's test resolution (evaluate's
        `test/model.resolution`) is an unbiased estimate. Resolution rather than val loss, because the loss changes
        meaning with the head, loss and target transform, while the resolution is the physics figure.
        """
        values = suggest(trial, self.tune.space)
        texts = {name: yaml_text(value) for name, value in values.items()}
        name = f"trial {trial.number}: " + " ".join(f"{k}={t}" for k, t in texts.items())
        child = Child(name, (*self.fixed, *(f"{k}={t}" for k, t in texts.items())),
                      {"tune.trial": trial.number, **{f"tune.{k}": t for k, t in texts.items()}},
                      self.out / f"trial_{trial.number:03d}")
        try:
            load_params(self.paths.params, "train", parse_overrides(list(child.overrides), "train"))
        except ParamsError as exc:  # a combination the train params refuse: the trial fails, the study goes on
            print(f"{name}: not a valid train setup: {exc}", file=sys.stderr, flush=True)
            self.rows.append({"trial": trial.number, **values, "run_id": "", "status": "INVALID"})
            return math.nan
        result = run_child(self.parent, child, self.paths)
        report(child, result)
        trial.set_user_attr("run_id", result.run_id)
        self.rows.append({"trial": trial.number, **values, **result.row()})
        value = result.figures["val_resolution"]
        return value if result.finished and math.isfinite(value) else math.nan


def log_best(study: Any, n_failed: int) -> None:
    """The best trial on the parent: params `best.<name>`, metric `best_value`, tag `mtt.tune.best_run`."""
    import mlflow

    best = study.best_trial
    mlflow.log_params({f"best.{name}": yaml_text(value) for name, value in best.params.items()})
    mlflow.log_metric("best_value", best.value)
    mlflow.set_tag("mtt.tune.best_run", best.user_attrs.get("run_id", ""))
    print(f"tune: best val resolution {best.value:.4f} in trial {best.number} (run {best.user_attrs.get('run_id')}): "
          + " ".join(f"{k}={yaml_text(v)}" for k, v in best.params.items()) + f"; {n_failed} trial(s) failed")


def run_tune(tune: TuneParams, train_overrides: Sequence[str], paths: StagePaths) -> list[dict[str, Any]]:
    """Optuna's seeded TPE search over `tune.space`; every trial a child run of one parent; the table."""
    import mlflow
    import optuna

    fixed = tuple(fixed_overrides(train_overrides))
    shared = parse_overrides(list(fixed), "train")
    clash = sorted(set(shared) & set(tune.space))
    if clash:
        raise ParamsError(f"mtt tune: {', '.join(clash)} both searched (tune.space) and fixed (--train-set)")
    experiment = load_params(paths.params, "train", shared).experiment  # a bad fixed override stops here
    out = paths.out or Path("sweeps") / "tune"
    paths.check_out(out)
    name = " ".join([f"tune {tune.n_trials} trials: {', '.join(tune.space)}", *fixed])
    space = {k: v.model_dump(exclude_none=True) for k, v in tune.space.items()}
    tags = {"mtt.tune.space": json.dumps(space), "mtt.tune.fixed": " ".join(fixed)}
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # each trial is reported by `report`
    state = Study(tune, fixed, paths, out)
    with parent_run(experiment, name, tags) as parent:
        state.parent = parent
        mlflow.log_params({"tune.n_trials": tune.n_trials, "tune.seed": tune.seed, "tune.timeout_s": tune.timeout_s})
        print(f"tune: run {parent.run_id}: up to {tune.n_trials} trials, outputs in {out}", flush=True)
        # Optuna's MLflowCallback would open a run of its own per trial; here the trial's run is the training
        # run itself (train logs into it through MLFLOW_RUN_ID), so the parent is logged by hand instead.
        study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=tune.seed))
        study.optimize(state.objective, n_trials=tune.n_trials, timeout=tune.timeout_s or None)
        n_failed = sum(row["status"] != "FINISHED" for row in state.rows)
        if study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            log_best(study, n_failed)
        finish_parent(state.rows, out, "tune", "trial", x_column="trial")
    return state.rows
