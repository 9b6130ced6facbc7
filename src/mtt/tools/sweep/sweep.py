"""Sweeps and tuning: many `mtt train` + `mtt evaluate` runs, each a child of one parent MLflow run.

`mtt sweep -S n_train=1e4,3e4,1e5` trains and evaluates once per value; `mtt tune` lets Optuna's TPE sampler
choose the train params of each trial from params.yaml's `tune.space`. Either way a child is an ordinary
training run: this module creates it (tagged with its parent, the swept value or the trial's params logged)
and runs the two stages in subprocesses with MLFLOW_RUN_ID set, exactly as `mlflow run` does, so train logs
everything into it and evaluate adds its figures (`test/model.resolution`, ...). The parent gets a table
(sweep.csv / tune.csv), a plot, and the counts of children and failures.

The stages run as subprocesses, never imported (an import-linter contract keeps it so): every child gets a
fresh TensorFlow with nothing left over from the one before, a crash of one child cannot take the others
down, and a child runs exactly what `mtt train` by hand would.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtt.core import lineage, metric_names, plots, run_lifecycle, tracking
from mtt.core.errors import MttError, ParamsError
from mtt.core.io import atomic_file, check_apart, check_not_protected, check_writable_dir
from mtt.core.params import load_yaml, parse_overrides
from mtt.stages.train.params import TrainParams
from mtt.tools.params import load_params
from mtt.tools.tune_params import SearchDimension, TuneParams

#: table column -> the metric train or evaluate logs on the child run under that name
METRICS = {
    "best_val_loss": "best_val_loss",          # train: the lowest val loss
    "val_resolution": "final/val_resolution",  # train: val resolution of the best-epoch weights (restored at the end)
    "test_resolution": "test/model.resolution",  # evaluate, on the test split
    "width_ratio": "test/model.width_ratio",     # evaluate: std(pred) / std(true)
    "crps": "test/model.crps",                   # evaluate: the continuous ranked probability score, GeV
    "train_seconds": "wall_time_s",            # train: the stage's wall time
}
#: the plot's panels: the table columns drawn in each, and the axis label
PANELS = ((("best_val_loss",), "best val loss"), (("val_resolution", "test_resolution"), "resolution"),
          (("width_ratio",), "width ratio (test)"), (("crps",), "CRPS [GeV]"))
TAIL_LINES = 15


class SweepFailed(MttError):
    """Every child of a sweep or study failed: the parent run ends FAILED and `mtt` exits non-zero."""


@dataclass(frozen=True)
class StagePaths:
    """What every child's train and evaluate read (defaults as in dvc.yaml), and the folder children write under."""

    params: Path
    prepared: Path
    reference: Path
    validation: Path | None = None
    docs: Path | None = None
    out: Path | None = None
    zprime: Path | None = None  # a prepared Z' sample: each child's evaluate injects it (prior robustness)

    def check_out(self, out: Path) -> None:
        """Before any run starts: the children's folder is apart from what they read, not the project, writable."""
        check_not_protected(out)
        check_apart(out, [p for p in (self.params, self.prepared, self.reference, self.validation, self.docs,
                                      self.zprime) if p is not None])
        check_writable_dir(out)


# --- values ------------------------------------------------------------------------------------------------


def split_overrides(overrides: Sequence[str]) -> tuple[str, list[str], list[str]]:
    """(param, its value texts, the fixed overrides): exactly one `-S key=a,b,...` may list several values."""
    swept = [item for item in overrides if _lists_values(item)]
    if len(swept) != 1:
        raise ParamsError("mtt sweep: give exactly one train param with comma-separated values, e.g. "
                          f"-S n_train=1e4,3e4,1e5 (got {len(swept)}: {', '.join(swept) or 'none'})")
    key, _, values = swept[0].partition("=")
    return key.strip().removeprefix("train."), values.split(","), fixed_overrides(o for o in overrides if o != swept[0])


def fixed_overrides(overrides: Iterable[str]) -> list[str]:
    """The overrides that set something: `-S epochs=` (an empty MLproject parameter) keeps params.yaml."""
    return [item for item in overrides if item.partition("=")[2].strip()]


def _lists_values(override: str) -> bool:
    """`key=a,b` lists values; a YAML list or mapping (`quantiles=[0.1,0.9]`) is one value."""
    value = override.partition("=")[2].strip()
    return "," in value and not value.startswith(("[", "{"))


def _number(value: Any) -> float | None:
    """The finite number `value` spells, or None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def parse_value(param: str, text: str) -> Any:
    """A swept value typed like its train param, read as params.yaml is (YAML 1.2): `1e4` is 10000 for an integer
    param and `1e-4` is 0.0001 for a float one."""
    known = TrainParams.model_fields
    if param not in known:
        raise ParamsError(f"mtt sweep: unknown train param {param!r}; known: {', '.join(known)}")
    text = text.strip()
    if not text:
        raise ParamsError(f"mtt sweep: {param}: an empty value in the list (comma-separated, e.g. {param}=a,b)")
    try:
        value = load_yaml(text)
    except Exception:  # a YAML error or load_yaml's ParamsError: both mean "not one value"
        raise ParamsError(f"mtt sweep: {param}={text}: not a valid value") from None
    kind = known[param].annotation
    if kind not in (int, float) or isinstance(value, bool):
        return value
    number = _number(value)
    if number is None:
        raise ParamsError(f"mtt sweep: {param}={text}: train.{param} takes a number")
    if kind is float:
        return number
    if not number.is_integer():
        raise ParamsError(f"mtt sweep: {param}={text}: train.{param} takes an integer")
    return int(number)


def yaml_text(value: Any) -> str:
    """Text that `-S` (YAML) reads back as `value`: floats always with a dot (`1.0e-05`, not `1e-05`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        if "e" in text and "." not in text:
            mantissa, _, exponent = text.partition("e")
            text = f"{mantissa}.0e{exponent}"
        return text
    if isinstance(value, str) and _reads_back(value):
        return value
    return json.dumps(value)


def _reads_back(text: str) -> bool:
    """Whether YAML reads `text` as that same string (not a number, a bool, null or a YAML error)."""
    try:
        return load_yaml(text) == text
    except Exception:  # a YAML error or load_yaml's ParamsError
        return False


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


# --- child runs --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parent:
    """The parent run and the store its children go to."""

    run_id: str
    experiment_id: str
    uri: str
    client: Any  # MlflowClient


@dataclass(frozen=True)
class Child:
    """One child: its run name, its train overrides, the params logged on it, and its output folder."""

    name: str
    overrides: tuple[str, ...]
    params: dict[str, Any]
    folder: Path


@dataclass(frozen=True)
class ChildResult:
    """How a child ended: run id, status, the table's figures, and the failing stage's stderr tail."""

    run_id: str
    status: str
    figures: dict[str, float]
    error: str = ""

    @property
    def finished(self) -> bool:
        """Only a FINISHED child has the figures of both stages."""
        return self.status == "FINISHED"

    def row(self) -> dict[str, Any]:
        """This child's columns of the table."""
        return {"run_id": self.run_id, "status": self.status, **self.figures}


@contextmanager
def parent_run(experiment: str, name: str, tags: dict[str, str]) -> Iterator[Parent]:
    """The parent run (new, or the one `mlflow run` started), ended FAILED on an error and KILLED on Ctrl-C."""
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = tracking.configure()
    experiment_id = tracking.ensure_experiment(experiment)
    run_lifecycle.mark_dead_runs(experiment_id)
    outer = os.environ.get("MLFLOW_RUN_ID")
    start = {"run_id": outer} if outer else {"experiment_id": experiment_id, "run_name": name}
    with mlflow.start_run(**start) as run:
        try:
            mlflow.set_tags({**tags, **run_lifecycle.process_tags(), **lineage.git_state(tracking.repo_root()),
                             "mlflow.runName": name})
            yield Parent(run.info.run_id, run.info.experiment_id, uri, MlflowClient(uri))
        except KeyboardInterrupt:
            mlflow.end_run(status="KILLED")
            raise
        except BaseException:
            mlflow.end_run(status="FAILED")
            raise


def start_child(parent: Parent, child: Child) -> str:
    """Create the child run under the parent, with its params; owned by this process until train takes it."""
    from mlflow.entities import Param

    run = parent.client.create_run(parent.experiment_id, run_name=child.name,
                                   tags={"mlflow.parentRunId": parent.run_id, **run_lifecycle.process_tags()})
    parent.client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in child.params.items()])
    return run.info.run_id


def stage_commands(child: Child, paths: StagePaths) -> dict[str, list[str]]:
    """`mtt train` then `mtt evaluate` for one child, with its outputs in the child's folder."""
    mtt = [sys.executable, "-m", "mtt"]
    folder = child.folder
    overrides = [arg for item in child.overrides for arg in ("-S", item)]
    train = [*mtt, "train", "--params", str(paths.params), *overrides, "--prepared", str(paths.prepared),
             "--reference", str(paths.reference), "--validation", str(paths.validation or ""),
             "--docs", str(paths.docs or ""), "--model", str(folder / "models"),
             "--metrics", str(folder / "train_metrics.json"), "--history", str(folder / "history.csv"),
             "--checkpoints", str(folder / "checkpoints")]
    evaluate = [*mtt, "evaluate", "--params", str(paths.params), "--prepared", str(paths.prepared),
                "--model", str(folder / "models"), "--out", str(folder / "eval"),
                "--history", str(folder / "history.csv"), *(["--zprime", str(paths.zprime)] if paths.zprime else [])]
    return {"train": train, "evaluate": evaluate}


def run_command(command: list[str], env: dict[str, str], log: Path) -> int:
    """Run one stage with its output in `log`.out and `log`.err; its exit status."""
    with log.with_suffix(".out").open("w") as out, log.with_suffix(".err").open("w") as err:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        try:
            return process.wait()
        except KeyboardInterrupt:
            stop(process)
            raise


def stop(process: subprocess.Popen) -> None:
    """After Ctrl-C (which the stage got too) or SIGTERM (which it did not): give the stage time to end its run
    KILLED, then terminate it, then kill it."""
    for action, seconds in ((None, 10), (process.terminate, 30), (process.kill, None)):
        if action is not None:
            action()
        try:
            process.wait(timeout=seconds)
            return
        except subprocess.TimeoutExpired:
            continue


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last lines of a log, indented for the terminal."""
    text = path.read_text(errors="replace").splitlines() if path.is_file() else []
    return "\n".join(f"    {line}" for line in text[-lines:])


def settle(client: Any, run_id: str, wanted: str) -> str:
    """End the child `wanted` unless train already ended it FAILED or KILLED; the final status."""
    status = client.get_run(run_id).info.status
    if status in ("FAILED", "KILLED"):
        return status
    if status != wanted:
        client.set_terminated(run_id, wanted)
    return wanted


def run_child(parent: Parent, child: Child, paths: StagePaths) -> ChildResult:
    """Create the child run, let train and evaluate log into it by subprocess, settle how it ended.

    With MLFLOW_RUN_ID set, train resumes that run instead of opening one and ends it FINISHED (FAILED on an
    error, KILLED on Ctrl-C); evaluate logs its figures into it without reopening it.
    """
    run_id = start_child(parent, child)
    env = {**os.environ, "MLFLOW_RUN_ID": run_id, "MLFLOW_TRACKING_URI": parent.uri}
    child.folder.mkdir(parents=True, exist_ok=True)
    error = ""
    try:
        for stage, command in stage_commands(child, paths).items():
            returncode = run_command(command, env, child.folder / stage)
            if returncode != 0:
                error = f"mtt {stage} exited with status {returncode}:\n{tail(child.folder / f'{stage}.err')}"
                break
    except KeyboardInterrupt:
        settle(parent.client, run_id, "KILLED")
        raise
    finally:
        parent.client.set_tag(run_id, "mlflow.runName", child.name)  # train names the run after its overrides
    status = settle(parent.client, run_id, "FAILED" if error else "FINISHED")
    for log in sorted(child.folder.glob("*.out")) + sorted(child.folder.glob("*.err")):
        parent.client.log_artifact(run_id, str(log), artifact_path="logs")
    metrics = parent.client.get_run(run_id).data.metrics
    found = {column: metric_names.find_metric(metrics, name) for column, name in METRICS.items()}
    return ChildResult(run_id, status, {column: math.nan if v is None else v for column, v in found.items()}, error)


def report(child: Child, result: ChildResult) -> None:
    """One line per child; a failed child's stderr tail."""
    if result.finished:
        figures = result.figures
        print(f"{child.name}: FINISHED (run {result.run_id}): val resolution {figures['val_resolution']:.4f}, "
              f"test resolution {figures['test_resolution']:.4f}, width ratio {figures['width_ratio']:.3f}, "
              f"{figures['train_seconds']:.0f} s", flush=True)
    else:
        print(f"{child.name}: {result.status} (run {result.run_id}): {result.error}", file=sys.stderr, flush=True)


def _folder_name(label: str) -> str:
    """A child's folder: its label, with no path separator that would nest it (feature_set=a/b)."""
    return label.replace("/", "_").replace(os.sep, "_")


# --- the parent's table and plot -----------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    """A CSV cell: empty for a missing figure."""
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return value


def write_table(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """The rows as CSV, failed children included (their figures empty)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with atomic_file(path) as tmp, tmp.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        writer.writerows({key: _cell(row.get(key, math.nan)) for key in columns} for row in rows)


def log_scale(values: Sequence[Any]) -> bool:
    """A log x-axis for positive numbers that span a factor 10 or more (1e4, 3e4, 1e5: evenly spaced)."""
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return len(numbers) == len(values) > 1 and min(numbers) > 0 and max(numbers) >= 10 * min(numbers)


def plot_rows(rows: Sequence[dict[str, Any]], param: str, path: Path, x_column: str = "value") -> None:
    """Val loss, resolution, width ratio and CRPS against the swept value (numbers in order, else categories)."""
    values = [row[x_column] for row in rows]
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    x = np.asarray(values, dtype=np.float64) if numeric else np.arange(len(values), dtype=np.float64)
    order = np.argsort(x, kind="stable")
    failed = [str(row[x_column]) for row in rows if row.get("status") != "FINISHED"]
    with plots.figure(path, nrows=2, ncols=2, figsize=(12, 9)) as (fig, axes):
        if failed:  # a failed child has no figures: say which, rather than leave a silent gap
            fig.suptitle(f"failed: {param} = {', '.join(failed)}", fontsize=16)
        for ax, (columns, label) in zip(axes.flat, PANELS, strict=True):
            for column in columns:
                y = np.asarray([row.get(column, math.nan) for row in rows], dtype=np.float64)
                ax.plot(x[order], y[order], "o-", label=column.replace("_", " "))
            ax.set_xlabel(param)
            ax.set_ylabel(label)
            if log_scale(values):
                ax.set_xscale("log")
            if not numeric:
                ax.set_xticks(x, [str(v) for v in values])
            if len(columns) > 1:
                ax.legend()


def finish_parent(rows: list[dict[str, Any]], out: Path, stem: str, x_label: str, x_column: str = "value") -> None:
    """Write and log the table and plot, log n_children and n_failed; fail the parent if every child failed."""
    import mlflow

    n_failed = sum(row["status"] != "FINISHED" for row in rows)
    write_table(rows, out / f"{stem}.csv")
    plot_rows(rows, x_label, out / f"{stem}.png", x_column)
    for name in (f"{stem}.csv", f"{stem}.png"):
        mlflow.log_artifact(str(out / name))
    mlflow.log_metrics({"n_children": len(rows), "n_failed": n_failed})
    print(f"{stem}: {len(rows) - n_failed} of {len(rows)} child runs finished; table {out / f'{stem}.csv'}, "
          f"plot {out / f'{stem}.png'}")
    if rows and n_failed == len(rows):
        raise SweepFailed(f"every child run failed ({len(rows)}); see the errors above and the runs' logs/")


# --- mtt sweep ---------------------------------------------------------------------------------------------


def run_sweep(overrides: Sequence[str], paths: StagePaths) -> list[dict[str, Any]]:
    """Train and evaluate once per value of one train param, each a child of one parent run; the table."""
    sweep = plan_sweep(paths.params, overrides)
    experiment = load_params(paths.params, "train", parse_overrides(list(sweep.fixed), "train")).experiment
    out = paths.out or Path("sweeps") / sweep.param
    paths.check_out(out)
    tags = {"mtt.tools.sweep.param": sweep.param, "mtt.tools.sweep.values": ",".join(sweep.texts),
            "mtt.tools.sweep.fixed": " ".join(sweep.fixed)}
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


# --- mtt tune ----------------------------------------------------------------------------------------------


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
