"""`mtt study-doc`: its options, and the call into the tool."""

from __future__ import annotations

import argparse
from typing import Any

from mtt.core.command import Command


def arguments(parser: argparse.ArgumentParser) -> None:
    """The documents, and whether to only check them."""
    parser.add_argument("documents", nargs="+", metavar="DOCUMENT",
                        help="Markdown files with `<!-- include: PATH -->` ... `<!-- end include -->` blocks")
    parser.add_argument("--check", action="store_true",
                        help="change nothing: fail naming every block that differs from its source")


def run(args: argparse.Namespace, params: Any) -> None:
    """Fill or check the documents' generated blocks."""
    from mtt.tools.studydoc.include import main

    main(args.documents, check=args.check)


COMMANDS = [Command(
    "study-doc", "fill a document's tables from the pipeline's outputs",
    "Replace each `<!-- include: PATH -->` ... `<!-- end include -->` block of the documents by the text of PATH "
    "(e.g. reports/comparison/comparison.md, which the compare stage writes); --check only says which differ.",
    arguments, run, reads_params=False, order=31)]
