"""How a stage or a tool declares its command line, so that `mtt` discovers commands and knows no stage.

Each `mtt/stages/<stage>/command.py` and `mtt/tools/<tool>/command.py` holds `COMMANDS`: what the command is
called, its options, the params section `-S` changes, and the function that runs it. Path options default to
params.yaml's `paths` section, which dvc.yaml reads too (`${paths.prepared}`): one default for both. A
configuration's outputs (`--config hybrid_mdn`) default to its own folder under a root of that section
(`paths.models/hybrid_mdn`, `paths.study/hybrid_mdn/train.json`), as dvc.yaml's `train@hybrid_mdn` writes them.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from mtt.core.errors import MttError

#: the configuration a stage run without --config stands for (its outputs' folder)
DEFAULT_CONFIG = "default"

#: the attribute of the parsed arguments that maps a path option's dest to its key in params.yaml's paths
PATH_KEYS = "_path_keys"


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, help, options, the params section it reads, and what runs it."""

    name: str
    summary: str
    description: str
    arguments: Callable[[argparse.ArgumentParser], None]
    #: runs the command with the parsed arguments and the whole params file (validated, `-S` applied)
    run: Callable[[argparse.Namespace, Any], None]
    #: the section `-S key=value` changes (None: no -S, or the command reads -S itself)
    section: str | None = None
    #: whether it reads the params file (--params): the whole file is checked before it starts
    reads_params: bool = True
    #: whether it logs to or reads from MLflow: a tracking server that is down is one line before any work
    tracked: bool = False
    #: place in `mtt --help` (the pipeline's order, then the tools)
    order: int = 100

    def uses_tracking(self, args: argparse.Namespace) -> bool:
        """TRACKED commands, predict with a runs:/ or models:/ model, anything under `mlflow run`."""
        model = str(getattr(args, "model", "") or "")
        return (self.tracked or bool(os.environ.get("MLFLOW_RUN_ID"))
                or (self.name == "predict" and model.startswith(("runs:/", "models:/"))))


def add_params_options(parser: argparse.ArgumentParser, section: str) -> None:
    """--params and -S: the params file, and changes to the command's section."""
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("-S", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a param of the {section} section, e.g. -S seed=5 (an empty value keeps "
                             "params.yaml)")


def add_overwrite(parser: argparse.ArgumentParser) -> None:
    """--overwrite: a stage replaces its own earlier output folder, or an empty one; anything else only when asked."""
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an output folder that holds files this stage did not write (never an input, "
                             "the current folder or the project)")


def add_config(parser: argparse.ArgumentParser) -> None:
    """--config: which configuration of the study (params.yaml's study.configs) this run is, and so the folder
    its outputs default to."""
    parser.add_argument("--config", default=None, metavar="NAME",
                        help=f"a configuration of params.yaml's study.configs (left out: the params as they stand, "
                             f"outputs in the folders of {DEFAULT_CONFIG!r}): train applies its preset and tags the "
                             "run; its outputs default to its own folders, as dvc.yaml's train@NAME writes them")


def path_option(parser: argparse.ArgumentParser, flag: str, key: str, help: str, repeatable: bool = False,
                per_config: str | None = None) -> None:
    """A path option whose default is params.yaml's `paths.<key>` (what dvc.yaml passes too); a repeatable one
    (`--input A --input B`) defaults to that one path; a per-configuration one to
    `paths.<key>/<config>/<per_config>`."""
    dest = flag.lstrip("-").replace("-", "_")
    more = {"action": "append", "metavar": "PATH"} if repeatable else {}
    where = f"paths.{key}" if per_config is None else str(PurePosixPath(f"paths.{key}", "CONFIG", per_config))
    parser.add_argument(flag, default=None, help=f"{help} (default: {where} of the params file)", **more)
    keys = dict(parser.get_default(PATH_KEYS) or {})
    parser.set_defaults(**{PATH_KEYS: {**keys, dest: (key, repeatable, per_config)}})


def fill_paths(args: argparse.Namespace, paths: Any) -> None:
    """Give every path option left out (or empty, as `mlflow run` passes a default) its default from the params
    file's `paths` section."""
    for dest, (key, repeatable, per_config) in (getattr(args, PATH_KEYS, None) or {}).items():
        given = getattr(args, dest)
        if given is not None and any(given if repeatable else [given]):
            continue
        if paths is None:
            raise MttError(f"--{dest.replace('_', '-')}: not given, and {args.params} has no `paths` section "
                           f"to take paths.{key} from")
        value = getattr(paths, key)
        if per_config is not None:
            value = str(PurePosixPath(value, args.config or DEFAULT_CONFIG, per_config))
        setattr(args, dest, [value] if repeatable else value)


def optional_path(value: str | None) -> Path | None:
    """An optional path option as a Path (an empty value, as `mlflow run` passes it, is none)."""
    return Path(value) if value else None
