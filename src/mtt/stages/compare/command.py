"""`mtt compare`: its options, and the call into the stage."""

from __future__ import annotations

import argparse
from typing import Any

from mtt.core.command import Command, add_overwrite, path_option


def arguments(parser: argparse.ArgumentParser) -> None:
    """The configurations' outputs, and where the comparison and the headline metrics go."""
    path_option(parser, "--study", "study", "the configurations' outputs: <study>/<config>/{train.json, history.csv, "
                "eval/}")
    path_option(parser, "--out", "comparison", "output folder: comparison.md, comparison.json, overlay figures")
    path_option(parser, "--headline", "headline", "the headline metrics (the DVC metrics file)")
    add_overwrite(parser)


def run(args: argparse.Namespace, params: Any) -> None:
    """Compare the study's configurations."""
    from mtt.stages.compare.stage import main  # here, not above: `mtt --help` must not load matplotlib

    main(params.study, args.study, args.out, args.headline, args.overwrite, params.evaluate.split)


COMMANDS = [Command(
    "compare", "the study's configurations side by side",
    "Compare the configurations of params.yaml's study (their train and evaluate outputs): a Markdown and JSON "
    "table against the ellipse method, overlay figures, the headline DVC metrics; their MLflow runs gathered "
    "under one parent run.", arguments, run, section="study", tracked=True, order=6)]
