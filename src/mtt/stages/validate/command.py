"""`mtt validate`: its options, and the call into the stage (or, with --data, new data against a reference)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from mtt.core.command import Command, add_overwrite, path_option
from mtt.core.dataset import SPLITS, split_path
from mtt.core.errors import MttError
from mtt.core.preprocessing import scaler_name


def arguments(parser: argparse.ArgumentParser) -> None:
    """The splits, the reference, the summary and Data Docs, or new data to check."""
    parser.add_argument("--prepared", default=None, help="prepared splits (default: paths.prepared of the params "
                        "file; not read with --data)")
    path_option(parser, "--reference", "reference", "reference folder")
    parser.add_argument("--summary", default=None, help="JSON summary (default: paths.validation, a DVC metric; "
                        "with --data: none, so checking new data never touches the pipeline's reports)")
    parser.add_argument("--docs", default=None, help="Data Docs site folder (default: paths.data_docs; with "
                        "--data: none)")
    parser.add_argument("--data", action="append", default=None, metavar="PATH",
                        help="new data to check against --reference: Parquet from prepare, or ROOT files")
    add_overwrite(parser)


def prepared_rows(paths: list[str], params_file: str) -> pd.DataFrame:
    """New data as one table: Parquet file(s) from prepare, or ROOT files run through `mtt prepare` first
    (a subprocess: a stage never imports another)."""
    files = [Path(p) for p in paths]
    if all(p.suffix == ".parquet" for p in files):
        return pd.concat([pd.read_parquet(p) for p in files], ignore_index=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "prepared"
        inputs = [arg for p in files for arg in ("--input", str(p))]
        done = subprocess.run([sys.executable, "-m", "mtt", "prepare", "--params", params_file, *inputs, "--out",
                               str(out), "--metrics", str(Path(tmp) / "cutflow.json")], capture_output=True, text=True)
        if done.returncode:
            lines = done.stderr.strip().splitlines() or ["(no message)"]
            raise MttError(f"--data: preparing {', '.join(paths)} failed: {lines[-1]}")
        return pd.concat([pd.read_parquet(split_path(out, s)) for s in SPLITS], ignore_index=True)


def run(args: argparse.Namespace, params: Any) -> None:
    """Validate the prepared splits, or new data; the scaler checked is the one training will use."""
    from mtt.stages.validate.stage import check_outputs, main, validate_new  # here: GX takes seconds to import

    scaler = scaler_name(params.train.scaler, params.train.log_features)
    if args.data:
        check_outputs([*args.data, args.reference], None, args.docs, args.summary, args.overwrite)
        frame = prepared_rows(args.data, args.params)
        validate_new(params.validation, frame, args.reference, args.summary, args.docs, scaler=scaler,
                     overwrite=args.overwrite)
        return
    paths = params.paths
    prepared = args.prepared or (paths.prepared if paths else None)
    summary = args.summary or (paths.validation if paths else None)
    docs = args.docs or (paths.data_docs if paths else None)
    if prepared is None or summary is None or docs is None:
        raise MttError(f"--prepared, --summary and --docs: not all given, and {args.params} has no `paths` section "
                       "to take them from")
    main(params.validation, prepared, args.reference, summary, docs, scaler, args.overwrite)


COMMANDS = [Command(
    "validate", "great-expectations checks of prepared data against the train reference",
    "Build the train reference (profile, scaler), validate every split: schema, physics ranges, units, drift, "
    "scaling. With --data, check new data (Parquet or ROOT) against an existing reference instead.",
    arguments, run, section="validate", order=3)]
