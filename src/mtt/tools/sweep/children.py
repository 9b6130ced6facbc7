"""What sweeps and studies share: the parent run, and each child run with its train and evaluate subprocesses.

A child is an ordinary training run: this module creates it (tagged with its parent, the swept value or the
trial's params logged) and runs the two stages in subprocesses with MLFLOW_RUN_ID set, exactly as `mlflow run`
does, so train logs everything into it and evaluate adds its figures (`test/model.resolution`, ...).

The stages run as subprocesses, never imported (an import-linter contract keeps it so): every child gets a
fresh TensorFlow with nothing left over from the one before, a crash of one child cannot take the others
down, and a child runs exactly what `mtt train` by hand would.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtt.core import cpu, lineage, metric_names, run_lifecycle, tracking
from mtt.core.io import check_apart, check_not_protected, check_writable_dir

#: table column -> the metric train or evaluate logs on the child run under that name
METRICS = {
    "best_val_loss": "best_val_loss",          # train: the lowest val loss
    "val_resolution": "final/val_resolution",  # train: val resolution of the best-epoch weights (restored at the end)
    "test_resolution": "test/model.resolution",  # evaluate, on the test split
    "width_ratio": "test/model.width_ratio",     # evaluate: std(pred) / std(true)
    "crps": "test/model.crps",                   # evaluate: the continuous ranked probability score, GeV
    "train_seconds": "wall_time_s",            # train: the stage's wall time
}
TAIL_LINES = 15


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
    with mlflow.start_run(**start) as run, run_lifecycle.active_run_ends_on_failure():
        mlflow.set_tags({**tags, **run_lifecycle.process_tags(), **lineage.git_state(tracking.repo_root()),
                         cpu.TAG: cpu.arithmetic(), "mlflow.runName": name})
        yield Parent(run.info.run_id, run.info.experiment_id, uri, MlflowClient(uri))


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
