"""`mtt evaluate`: its options, and the call into the stage."""

from __future__ import annotations

import argparse
from typing import Any

from mtt.core.command import Command, add_config, add_overwrite, path_option


def arguments(parser: argparse.ArgumentParser) -> None:
    """The splits, the model, the output folder, the history and the Z' sample."""
    path_option(parser, "--prepared", "prepared", "prepared splits")
    add_config(parser)
    path_option(parser, "--model", "models", "the train stage's model folder", per_config="")
    path_option(parser, "--out", "study", "output folder", per_config="eval")
    path_option(parser, "--history", "study", "training history, for the loss curve", per_config="history.csv")
    parser.add_argument("--zprime", default=None, metavar="PREPARED",
                        help="prepared Z' sample (paths.prepared_zprime): inject it into the test split and fit the "
                             "peak per estimator (prior robustness)")
    add_overwrite(parser)


def run(args: argparse.Namespace, params: Any) -> None:
    """Evaluate the model next to the classical estimators."""
    from mtt.stages.evaluate.stage import main  # here, not above: `mtt --help` must not load TensorFlow

    main(params.evaluate, args.prepared, args.model, args.out, args.history, args.zprime, args.overwrite)


COMMANDS = [Command(
    "evaluate", "resolution, bias, spectrum of the model next to the ellipse method",
    "Evaluate the trained model on the test split next to the visible-mass and ellipse-method baselines: "
    "metrics JSON, per-bin tables, plots; logged to the training run in MLflow.", arguments, run,
    section="evaluate", tracked=True, order=5)]
