"""`mtt runs --cleanup`: MLflow housekeeping, the runs of dead processes marked KILLED."""

from __future__ import annotations

import argparse
from typing import Any

from mtt.core import run_lifecycle, tracking
from mtt.core.command import Command
from mtt.core.errors import MttError


def hours(text: str) -> float:
    """--older-than: a number of hours, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of hours, 0 or more, got {text!r}")
    return value


def arguments(parser: argparse.ArgumentParser) -> None:
    """--cleanup, the experiment, and when an untagged run counts as dead."""
    parser.add_argument("--cleanup", action="store_true", required=True, help="mark dead runs KILLED")
    parser.add_argument("--experiment", default=None, help="experiment name (default: all experiments)")
    parser.add_argument("--older-than", type=hours, default=None, metavar="HOURS",
                        help="a RUNNING run without mtt's process tags is dead once it started this many hours ago "
                             "(default: 24; 0: every such run)")


def cleanup_runs(experiment: str | None, older_than: float | None = None) -> list[str]:
    """Mark the dead RUNNING runs of one experiment (or all) KILLED, untagged ones after `older_than` hours
    (default: run_lifecycle.UNTAGGED_HOURS); their ids."""
    from mlflow.tracking import MlflowClient  # here, not above: `mtt --help` must not load MLflow

    tracking.configure()
    client = MlflowClient()
    experiments = [client.get_experiment_by_name(experiment)] if experiment else client.search_experiments()
    if experiment and experiments[0] is None:
        raise MttError(f"no MLflow experiment {experiment!r} in {tracking.tracking_uri()}")
    untagged = run_lifecycle.UNTAGGED_HOURS if older_than is None else older_than
    killed = [run for e in experiments for run in run_lifecycle.mark_dead_runs(e.experiment_id, untagged)]
    print(f"mtt runs: {len(killed)} run(s) of dead processes marked KILLED")
    return killed


def run(args: argparse.Namespace, params: Any) -> None:
    """Clean up."""
    cleanup_runs(args.experiment, args.older_than)


COMMANDS = [Command(
    "runs", "MLflow housekeeping: mark runs of dead processes KILLED",
    "Runs left RUNNING by a process that died without a word (SIGKILL, a lost node) are marked KILLED: a run mtt "
    "made carries its process (host, pid, start time) and is dead when that process no longer runs on this host; a "
    "run without those tags (made by another tool, or by an older mtt) cannot be checked, so it counts as dead once "
    "it started more than --older-than hours ago. Runs of processes on other hosts are left to `mtt runs --cleanup` "
    "there. `mtt train` and `mtt sweep` mark the dead tagged runs of their experiment by themselves.",
    arguments, run, tracked=True, reads_params=False, order=22)]
