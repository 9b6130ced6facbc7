"""The `mtt` command: it finds the commands the stages and tools declare, and knows none of them.

Each `mtt/stages/<stage>/command.py` and `mtt/tools/<tool>/command.py` lists its `COMMANDS`
(`mtt.core.command.Command`). Before any command starts, the whole params file is checked: a typo in any
section stops the pipeline before work starts, naming the key. Importing it first caps the numerical
libraries' instruction set (`mtt.core.cpu`), so that every stage's bytes are the same on any x86-64-v3 CPU.
"""

from __future__ import annotations

from mtt.core.cpu import pin_arithmetic

pin_arithmetic()  # before numpy, OpenBLAS and TensorFlow load (the imports below load numpy): the same bits on any CPU

import argparse
import importlib
import pkgutil
from typing import Any

import mtt.stages
import mtt.tools
from mtt.core import tracking
from mtt.core.command import Command, add_params_options, fill_paths
from mtt.core.outcome import finish
from mtt.core.params import parse_overrides
from mtt.tools.params import load_whole


def discover() -> dict[str, Command]:
    """Every command of the stages and the tools, in the pipeline's order and then the tools'."""
    found: list[Command] = []
    for floor in (mtt.stages, mtt.tools):
        for package in pkgutil.iter_modules(floor.__path__, f"{floor.__name__}."):
            if package.ispkg and importlib.util.find_spec(f"{package.name}.command") is not None:
                found.extend(importlib.import_module(f"{package.name}.command").COMMANDS)
    return {command.name: command for command in sorted(found, key=lambda c: (c.order, c.name))}


def build_parser(commands: dict[str, Command]) -> argparse.ArgumentParser:
    """The argument parser: a subcommand per command, with --params, -S and --debug where they apply."""
    parser = argparse.ArgumentParser(prog="mtt", description="m_tt regression pipeline: run one stage or tool.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (or MTT_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in commands.values():
        one = sub.add_parser(command.name, help=command.summary, description=command.description)
        if command.reads_params and command.section is not None:
            add_params_options(one, command.section)
        elif command.reads_params:
            one.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
        command.arguments(one)
        one.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show the traceback of an error (or MTT_DEBUG=1)")
    return parser


def parser() -> argparse.ArgumentParser:
    """The whole command line, as the documentation generates it (sphinx-argparse)."""
    return build_parser(discover())


def start(command: Command, args: argparse.Namespace) -> None:
    """Check the tracking server and the whole params file, fill path defaults, run the command."""
    if command.uses_tracking(args):  # a server that is down: one line now, not after the stage's work

        tracking.require_server()
    params: Any = None
    if command.reads_params:
        args.changes = parse_overrides(args.overrides, command.section) if command.section else {}
        params = load_whole(args.params, command.section, args.changes, getattr(args, "config", None))
        fill_paths(args, params.paths)
    command.run(args, params)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run the command; its exit status (one-line errors, tracebacks behind --debug)."""
    commands = discover()
    args = build_parser(commands).parse_args(argv)
    command = commands[args.command]
    return finish(command.name, args, lambda: start(command, args))
