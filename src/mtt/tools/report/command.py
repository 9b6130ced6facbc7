"""`mtt report`: a study's results table and figures, rebuilt from tracked MLflow runs."""

from __future__ import annotations

import argparse
from typing import Any

from mtt.core.command import Command


def arguments(parser: argparse.ArgumentParser) -> None:
    """The spec and the output folder."""
    parser.add_argument("--spec", required=True, help="report spec, e.g. docs/bias-study.yaml")
    parser.add_argument("--out", default="docs", help="output folder (default: docs)")


def run(args: argparse.Namespace, params: Any) -> None:
    """Build the table and figures."""
    from mtt.tools.report.report import main  # here, not above: `mtt --help` must not load MLflow

    main(args.spec, args.out)


COMMANDS = [Command(
    "report", "a study's results table and figures, rebuilt from tracked MLflow runs",
    "Read a report spec (YAML: rows = run id + estimator, metric columns, figures), write <out>/<spec "
    "stem>-table.md and <out>/figures/<name> from the runs' metrics and artifacts, and print the table.",
    arguments, run, tracked=True, reads_params=False, order=30)]
