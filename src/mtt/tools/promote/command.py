"""`mtt promote`: move the registered model's alias champion to a better version."""

from __future__ import annotations

import argparse
from typing import Any

from mtt.core.command import Command
from mtt.core.errors import MttError
from mtt.tools.params import load_params


def arguments(parser: argparse.ArgumentParser) -> None:
    """The model, the version or run, the metric, --force."""
    parser.add_argument("--params", default="params.yaml", help="params file: train.registered_model and "
                        "train.promote_metric are the defaults (default: params.yaml)")
    parser.add_argument("--name", default=None, help="registered model (default: train.registered_model)")
    parser.add_argument("--version", default=None, help="the version to promote (default: alias candidate)")
    parser.add_argument("--run", default=None, metavar="RUN_ID", help="promote the version this run registered "
                        "(instead of --version)")
    parser.add_argument("--metric", default=None, help="run metric to compare, lower is better (default: "
                        "train.promote_metric, e.g. final/val_resolution; test/model.resolution once evaluate ran)")
    parser.add_argument("--force", nargs="?", const="true", default="false", choices=["true", "false", ""],
                        metavar="true|false", help="move champion whatever the metric says (--force, or --force=true)")


def run(args: argparse.Namespace, params: Any) -> None:
    """The name and metric default to params.yaml's train section (read only when needed)."""
    from mtt.core.registry import main  # here, not above: `mtt --help` must not load MLflow

    if args.version and args.run:
        raise MttError("give --version or --run, not both")
    train = load_params(args.params, "train") if not (args.name and args.metric) else None
    name = args.name or train.registered_model
    if not name:
        raise MttError(f"no registered model to promote: train.registered_model is empty in {args.params}; give "
                       "--name")
    main(name, args.metric or train.promote_metric, args.version or None, args.run or None, args.force == "true")


COMMANDS = [Command(
    "promote", "move the registered model's alias champion to a better version",
    "Move alias `champion` of a registered model to a version (--version, --run, default: the one alias "
    "`candidate` names) when its metric is lower than the champion's, or with --force; print what was done and "
    "why. An empty value keeps the default (as `mlflow run -e promote` passes it).", arguments, run, tracked=True,
    reads_params=False, order=23)]
