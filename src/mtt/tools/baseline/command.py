"""`mtt baseline --check`: a fresh run's metrics against the committed ones."""

from __future__ import annotations

import argparse
from typing import Any

from mtt.core.command import Command


def arguments(parser: argparse.ArgumentParser) -> None:
    """--check, the rules file, and whether to list every figure."""
    parser.add_argument("--check", action="store_true", required=True, help="compare against git HEAD")
    parser.add_argument("--rules", default="baseline.yaml", help="tolerances, next to dvc.yaml (default: "
                        "baseline.yaml)")
    parser.add_argument("--all", dest="show_all", action="store_true", help="list every figure, not only those "
                        "that differ")


def run(args: argparse.Namespace, params: Any) -> None:
    """Compare, print, and fail naming the figures beyond tolerance."""
    from mtt.tools.baseline.baseline import main  # here, like every command: `mtt --help` imports no tool

    main(args.rules, args.show_all)


COMMANDS = [Command(
    "baseline", "the working tree's DVC metrics against those committed at HEAD",
    "Compare every figure of the metrics files dvc.yaml names with git HEAD's: data-derived ones exactly, "
    "model-derived ones within the relative tolerances of baseline.yaml (measured from the seed-to-seed spread). "
    "Prints the figures that differ; exits 1 naming those beyond tolerance.", arguments, run, reads_params=False,
    order=40)]
