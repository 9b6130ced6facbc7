"""`mtt simulate`: its options, and the call into the stage."""

from __future__ import annotations

import argparse
from typing import Any

from mtt.core.command import Command, add_overwrite, path_option


def arguments(parser: argparse.ArgumentParser) -> None:
    """The output folder."""
    path_option(parser, "--out", "raw", "output folder")
    add_overwrite(parser)


def run(args: argparse.Namespace, params: Any) -> None:
    """Generate, reconstruct and write the events."""
    from mtt.stages.simulate.stage import main  # here, not above: `mtt --help` must not load Pythia

    main(params.simulate, args.out, args.overwrite)


COMMANDS = [Command(
    "simulate", "Pythia 8 tt -> dilepton events + detector -> ROOT files",
    "Generate tt -> dilepton events with Pythia 8, apply a Delphes-CMS-like detector response, write "
    "NanoAOD-style ROOT.", arguments, run, section="simulate", order=1)]
