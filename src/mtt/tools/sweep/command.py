"""`mtt sweep` and `mtt tune`: their options, and the calls into the tool (children run as subprocesses)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mtt.core.command import Command, optional_path, path_option


def child_paths(parser: argparse.ArgumentParser, out: str) -> None:
    """The paths every child's train and evaluate read (as in dvc.yaml), and the folder children write under."""
    path_option(parser, "--prepared", "prepared", "prepared splits")
    path_option(parser, "--reference", "reference", "the validate stage's reference")
    path_option(parser, "--validation", "validation", "the validate stage's summary, attached to each run")
    path_option(parser, "--docs", "data_docs", "the validate stage's Data Docs, attached too")
    parser.add_argument("--out", default=None, help=f"folder of the table, the plot and one folder per child run "
                                                    f"(default: {out})")
    parser.add_argument("--zprime", default=None, metavar="PREPARED",
                        help="prepared Z' sample: every child's evaluate injects it (e.g. data/prepared_zprime)")


def sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """The swept param and the fixed ones (-S, read by the sweep itself), and the children's paths."""
    parser.add_argument("-S", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a train param: one with comma-separated values is swept (-S n_train=1e4,3e4,1e5, "
                             "-S head=point,mdn), any other is fixed for every child (-S epochs=5)")
    child_paths(parser, "sweeps/<param>")


def tune_arguments(parser: argparse.ArgumentParser) -> None:
    """Train params fixed for every trial, and the children's paths."""
    parser.add_argument("-T", "--train-set", dest="train_overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="a train param fixed for every trial, e.g. -T epochs=5")
    child_paths(parser, "sweeps/tune")


def stage_paths(args: argparse.Namespace) -> Any:
    """What the children read, and where they write."""
    from mtt.tools.sweep.children import StagePaths  # here, not above: `mtt --help` must not load MLflow

    return StagePaths(params=Path(args.params), prepared=Path(args.prepared), reference=Path(args.reference),
                      validation=optional_path(args.validation), docs=optional_path(args.docs),
                      out=optional_path(args.out), zprime=optional_path(args.zprime))


def run_sweep(args: argparse.Namespace, params: Any) -> None:
    """One child per value of the swept param."""
    from mtt.tools.sweep.sweep import run_sweep  # here, not above: `mtt --help` must not load MLflow

    run_sweep(args.overrides, stage_paths(args))


def run_tune(args: argparse.Namespace, params: Any) -> None:
    """Optuna's trials, each a child."""
    from mtt.tools.sweep.tune import run_tune  # here, not above: `mtt --help` must not load MLflow and Optuna

    run_tune(params.tune, args.train_overrides, stage_paths(args))


COMMANDS = [
    Command("sweep", "train + evaluate once per value of one train param, as child runs",
            "For each value of one train param (-S key=a,b,c) run `mtt train` then `mtt evaluate` in a subprocess, "
            "logged into a child of one parent MLflow run; a failed child is marked FAILED and the sweep goes on. "
            "Writes sweep.csv and sweep.png to --out and to the parent run.", sweep_arguments, run_sweep,
            tracked=True, order=10),
    Command("tune", "Optuna search over train params (tune.space), each trial a child run",
            "Hyper-parameter search with Optuna's seeded TPE sampler over params.yaml's tune.space; each trial is "
            "`mtt train` + `mtt evaluate` logged into a child of one parent MLflow run; the objective is the val "
            "resolution at the best epoch. The parent gets best.<param>, best_value, tune.csv and tune.png.",
            tune_arguments, run_tune, section="tune", tracked=True, order=11),
]
