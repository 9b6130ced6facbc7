"""`mtt predict`: its options, and the call into the stage."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mtt.core.command import Command, optional_path


def arguments(parser: argparse.ArgumentParser) -> None:
    """The model, the inputs and the output, and how to read the inputs."""
    parser.add_argument("--model", required=True,
                        help="a models/ folder, runs:/<run id>, or models:/<name>@<alias> (or /<version>)")
    parser.add_argument("--input", action="append", required=True, metavar="PATH",
                        help="ROOT file or folder of .root files (repeatable)")
    parser.add_argument("--output", required=True, help="file.parquet, or file.root (a friend tree of the input)")
    parser.add_argument("--schema", choices=["native", "nanoaod"], default=None, help="input branch layout")
    parser.add_argument("--units", choices=["GeV", "MeV"], default=None, help="energy unit of the input")
    parser.add_argument("--reference", default=None, help="a reference folder whose train profile the drift checks "
                        "use (default: the profile saved with the model)")
    parser.add_argument("--strict", action="store_true", help="refuse, instead of warning, when features drifted")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")


def run(args: argparse.Namespace, params: Any) -> None:
    """params.yaml's prepare section (-S checked there) under the model's own, then the command line's changes."""
    from mtt.stages.predict.stage import Request, main  # here, not above: `mtt --help` must not load TensorFlow

    changes = dict(args.changes)
    changes.update({k: v for k, v in (("schema", args.schema), ("units", args.units)) if v is not None})
    request = Request(args.model, args.input, Path(args.output), optional_path(args.reference), args.strict,
                      args.overwrite, params.evaluate.mdn_window)
    drift = params.validation.drift
    main(request, params.prepare, changes, (drift.mean_shift_max, drift.quantile_shift_max))


COMMANDS = [Command(
    "predict", "a trained model on new ROOT files (simulated or CMS NanoAOD)",
    "Apply a trained model to ROOT files with the selection and features of its training data (carried in "
    "model.json): one row per input event, m_tt where it passes. -S changes the prepare section, e.g. -S "
    "selection.n_btag_min=0.", arguments, run, section="prepare", order=7)]
