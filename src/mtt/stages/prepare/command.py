"""`mtt prepare`: its options, and the call into the stage."""

from __future__ import annotations

import argparse
from typing import Any

from mtt.core.command import Command, add_overwrite, path_option


def arguments(parser: argparse.ArgumentParser) -> None:
    """Inputs, the output folder and the cutflow."""
    path_option(parser, "--input", "raw", "ROOT file or folder of .root files (repeatable)", repeatable=True)
    path_option(parser, "--out", "prepared", "output folder")
    path_option(parser, "--metrics", "cutflow", "cutflow metrics JSON")
    add_overwrite(parser)


def run(args: argparse.Namespace, params: Any) -> None:
    """Select, build features, split."""
    from mtt.stages.prepare.stage import main  # here, not above: `mtt --help` stays fast

    main(params.prepare, args.input, args.out, args.metrics, args.overwrite)


COMMANDS = [Command(
    "prepare", "selection, features and train/val/test Parquet from ROOT files",
    "Read ROOT files (simulate output or CMS NanoAOD), apply the dilepton selection, build the feature sets, "
    "write train/val/test Parquet.", arguments, run, section="prepare", order=2)]
