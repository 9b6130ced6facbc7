"""`mtt train`: its options, and the call into the stage."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mtt.core.command import Command, add_config, add_overwrite, optional_path, path_option


def arguments(parser: argparse.ArgumentParser) -> None:
    """What validate left (splits, reference, checks) and where the model, metrics and history go."""
    path_option(parser, "--prepared", "prepared", "prepared splits")
    path_option(parser, "--reference", "reference", "the validate stage's reference: the scaler fitted on train")
    path_option(parser, "--validation", "validation", "the validate stage's summary, attached to the run")
    path_option(parser, "--docs", "data_docs", "the validate stage's Data Docs, attached too")
    add_config(parser)
    path_option(parser, "--model", "models", "output folder for the model", per_config="")
    path_option(parser, "--metrics", "study", "headline figures (JSON)", per_config="train.json")
    path_option(parser, "--history", "study", "per-epoch history (a DVC plot)", per_config="history.csv")
    path_option(parser, "--checkpoints", "checkpoints", "per-epoch state that train.resume continues from",
                per_config="")
    add_overwrite(parser)


def run(args: argparse.Namespace, params: Any) -> None:
    """Train, logging the run to MLflow."""
    from mtt.stages.train.stage import TrainPaths, main  # here, not above: `mtt --help` must not load TensorFlow

    paths = TrainPaths(prepared=Path(args.prepared), reference=Path(args.reference), model=Path(args.model),
                       metrics=optional_path(args.metrics), history=optional_path(args.history),
                       checkpoints=optional_path(args.checkpoints), validation=optional_path(args.validation),
                       docs=optional_path(args.docs), overwrite=args.overwrite)
    main(params.train, paths, args.changes, Path(args.params), args.config)


COMMANDS = [Command(
    "train", "Keras regression of m_tt, logged to MLflow",
    "Train the m_tt regressor on the prepared splits; log the run to MLflow (params, lineage, per-epoch metrics, "
    "artifacts, model with signature).", arguments, run, section="train", tracked=True, order=4)]
