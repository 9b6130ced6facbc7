"""Generated blocks in a hand-written Markdown document, each filled from one tracked output of the pipeline.

A block is opened by `<!-- include: PATH -->` and closed by `<!-- end include -->`; PATH is relative to the
project root (the folder of dvc.yaml). Between them stands exactly the file's text, so the document's tables
are the compare stage's, digit for digit; `check` names every block that differs (a test runs it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mtt.core.errors import MttError

BEGIN = re.compile(r"^<!-- include: (?P<path>\S+) -->\n", re.MULTILINE)
END = "<!-- end include -->"


class StudyDocError(MttError):
    """A document whose blocks cannot be filled: an unclosed block, or a source that is not there."""


@dataclass(frozen=True)
class Block:
    """One generated block: its source, and where its text starts and ends in the document."""

    source: str
    start: int
    end: int


def blocks(text: str, document: str) -> list[Block]:
    """Every include block of a document, in order."""
    found = []
    for match in BEGIN.finditer(text):
        end = text.find(END, match.end())
        if end < 0:
            line = text.count("\n", 0, match.start()) + 1
            raise StudyDocError(f"{document}:{line}: `<!-- include: {match['path']} -->` has no `{END}`")
        found.append(Block(match["path"], match.end(), end))
    return found


def source_text(root: Path, block: Block, document: str) -> str:
    """The text a block must hold: its source file, ending in one newline."""
    path = root / block.source
    if not path.is_file():
        raise StudyDocError(f"{document}: the block's source {block.source} is missing; run `dvc repro` (or `dvc "
                            "pull`) first")
    return path.read_text().rstrip("\n") + "\n"


def filled(text: str, root: Path, document: str) -> str:
    """The document with every block replaced by its source's text."""
    out, position = [], 0
    for block in blocks(text, document):
        out += [text[position:block.start], source_text(root, block, document)]
        position = block.end
    return "".join(out) + text[position:]


def stale(text: str, root: Path, document: str) -> list[str]:
    """The sources whose block in the document differs from them."""
    return [b.source for b in blocks(text, document) if text[b.start:b.end] != source_text(root, b, document)]


def main(documents: list[str], root: str | Path = ".", check: bool = False) -> list[str]:
    """Fill (or, with check, compare) every block of the documents; the stale sources found."""
    root = Path(root)
    found = []
    for name in documents:
        path = Path(name)
        text = path.read_text()
        differing = stale(text, root, name)
        found += [f"{name}: {source}" for source in differing]
        if not check and differing:
            path.write_text(filled(text, root, name))
            print(f"study-doc: {name}: {len(differing)} block(s) filled from {', '.join(differing)}")
    if check and found:
        raise StudyDocError(f"{len(found)} block(s) differ from the pipeline's outputs: {'; '.join(found)}; run "
                            f"`mtt study-doc {' '.join(documents)}`")
    return found
