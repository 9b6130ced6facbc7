"""`mtt ui` and `mtt relocate`: the project's MLflow store, served or moved."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mtt.core.command import Command


def ui_arguments(parser: argparse.ArgumentParser) -> None:
    """The experiment whose runs the URL shows, and where to listen."""
    parser.add_argument("--experiment", default="mtt", help="experiment whose runs the printed URL shows (default: "
                        "mtt)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1, this machine "
                        "only)")
    parser.add_argument("--port", type=int, default=5000, help="port (default: 5000)")


def relocate_arguments(parser: argparse.ArgumentParser) -> None:
    """The folder the store was written in."""
    parser.add_argument("--from", dest="old", default=None, type=Path,
                        help="the folder the store was written in (default: read from the store)")


def run_ui(args: argparse.Namespace, params: Any) -> None:
    """Serve the store."""
    from mtt.tools.store.store import serve  # here, not above: `mtt --help` must not load MLflow

    serve(args.experiment, args.host, args.port)


def run_relocate(args: argparse.Namespace, params: Any) -> None:
    """Rewrite the store's recorded paths."""
    from mtt.tools.store.store import relocate  # here, not above: `mtt --help` must not load MLflow

    relocate(args.old)


COMMANDS = [
    Command("ui", "the MLflow UI for this project's runs (one worker), opened on the training runs",
            "Start `mlflow server` on the project's store with one worker, no job runner and no telemetry, and print "
            "the URL of the experiment's training runs.", ui_arguments, run_ui, reads_params=False, order=20),
    Command("relocate", "point a copied or moved project's MLflow store at its new folder",
            "The local store (mlflow.db, the MLmodel files under mlartifacts/) records absolute paths of the folder "
            "the runs were made in; rewrite them to this project's folder.", relocate_arguments, run_relocate,
            reads_params=False, order=21),
]
