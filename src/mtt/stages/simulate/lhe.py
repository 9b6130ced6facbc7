"""A quick structural check of Les Houches Event files, so a malformed file fails before Pythia starts.

Pythia reports LHE problems as a failed init or a silently short run; this pass names the file and line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class LHEError(ValueError):
    """A missing or malformed LHE file, with the line where reading failed."""


@dataclass(frozen=True)
class LHEInfo:
    """What simulate needs to know about an LHE file before showering it."""

    path: Path
    n_events: int
    beam_ids: tuple[int, int]
    beam_energies: tuple[float, float]

    @property
    def sqrt_s(self) -> float:
        """Centre-of-mass energy for head-on beams of massless-ish particles."""
        return 2.0 * (self.beam_energies[0] * self.beam_energies[1]) ** 0.5


def _numbers(text: str, count: int, what: str, where: str) -> list[float]:
    fields = text.split()
    if len(fields) < count:
        raise LHEError(f"{where}: {what}: expected {count} numbers, found {len(fields)}: {text.strip()!r}")
    try:
        return [float(f.replace("D", "E").replace("d", "e")) for f in fields[:count]]
    except ValueError:
        raise LHEError(f"{where}: {what}: not a number in {text.strip()!r}") from None


def inspect_lhe(path: str | os.PathLike[str]) -> LHEInfo:  # noqa: C901  (one pass over a line-based format)
    """Check the LHE structure (header, init block, every event block); count the events."""
    path = Path(path)
    if not path.is_file():
        raise LHEError(f"{path}: LHE file not found")
    beam_ids: tuple[int, int] | None = None
    beam_energies: tuple[float, float] = (0.0, 0.0)
    n_events = 0
    state = "start"  # start -> header -> init -> body -> event(n particles left) -> body ... -> end
    particles_left = 0
    event_line = 0
    try:
        handle = path.open("r", encoding="utf-8", errors="strict")
        with handle:
            for lineno, line in enumerate(handle, start=1):
                where = f"{path}:{lineno}"
                stripped = line.strip()
                if state == "start":
                    if not stripped:
                        continue
                    if not stripped.startswith("<LesHouchesEvents"):
                        raise LHEError(f"{where}: not an LHE file: expected '<LesHouchesEvents', "
                                       f"found {stripped[:40]!r}")
                    state = "header"
                elif state == "header":
                    if stripped.startswith("<init"):
                        state = "init"
                elif state == "init":
                    if not stripped or stripped.startswith("#"):
                        continue
                    values = _numbers(stripped, 10, "<init> beam line", where)
                    beam_ids = (int(values[0]), int(values[1]))
                    beam_energies = (values[2], values[3])
                    state = "body"
                elif state == "body":
                    if stripped.startswith("<event"):
                        state, event_line, particles_left = "event_head", lineno, -1
                    elif stripped.startswith("</LesHouchesEvents"):
                        state = "end"
                elif state == "event_head":
                    if not stripped or stripped.startswith("#"):
                        continue
                    nup = _numbers(stripped, 6, "event header (NUP IDPRUP XWGTUP SCALUP AQEDUP AQCDUP)", where)[0]
                    if nup != int(nup) or nup < 1:
                        raise LHEError(f"{where}: event header: NUP must be a positive integer, got {nup}")
                    particles_left = int(nup)
                    state = "particles"
                elif state == "particles":
                    if stripped.startswith("</event") or stripped.startswith("<event"):
                        raise LHEError(f"{where}: event starting at line {event_line} has "
                                       f"{particles_left} particle line(s) missing")
                    _numbers(stripped, 13, "particle line (ID IST MOTH1 MOTH2 ICOL1 ICOL2 PX PY PZ E M VTIM "
                             "SPIN)", where)
                    particles_left -= 1
                    if particles_left == 0:
                        state = "event_tail"
                elif state == "event_tail":
                    if stripped.startswith("</event"):
                        n_events += 1
                        state = "body"
                    elif stripped.startswith("<event"):
                        raise LHEError(f"{where}: event starting at line {event_line} is not closed by "
                                       f"'</event>'")
    except UnicodeDecodeError as exc:
        raise LHEError(f"{path}: not a text LHE file ({exc.reason} at byte {exc.start})") from None
    if state in ("start", "header", "init"):
        raise LHEError(f"{path}: no <init> block with a beam line found; not a complete LHE file")
    if state in ("event_head", "particles", "event_tail"):
        raise LHEError(f"{path}: file ends inside the event starting at line {event_line} (truncated?)")
    if n_events == 0:
        raise LHEError(f"{path}: contains no <event> blocks")
    assert beam_ids is not None
    return LHEInfo(path=path, n_events=n_events, beam_ids=beam_ids, beam_energies=beam_energies)
