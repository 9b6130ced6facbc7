"""How a command ends: its exit status, and one line for any error (the traceback behind --debug).

0 done, 1 a failed validation, 2 an error the user can fix (named), 130 Ctrl-C, 143 SIGTERM (runs end
KILLED, outputs stay whole).
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any

from mtt.core.errors import MttError, ValidationFailed
from mtt.core.io import OutputError


class Terminated(KeyboardInterrupt):
    """SIGTERM (what `kill` and batch systems send), handled like Ctrl-C: runs end KILLED, outputs stay whole."""


def _terminate(signum: int, frame: Any) -> None:
    """The first SIGTERM stops the stage; the ones after it (a batch system's second `kill`, an impatient
    user) must not abort the cleanup it starts, which ends the run KILLED and removes temporary outputs."""
    signal.signal(signal.SIGTERM, _cleaning_up)
    raise Terminated


def _cleaning_up(signum: int, frame: Any) -> None:
    """A SIGTERM during the cleanup: say so, and let the cleanup finish (SIGKILL stops at once)."""
    os.write(2, b"mtt: SIGTERM again: still ending the run and removing temporary outputs (SIGKILL stops at "
                b"once)\n")


#: what a failure of MLflow's store or client says, and what the user can do about it
MLFLOW_HINTS = (
    (("registered tracking store", "unsupported uri", "not a valid uri", "scheme"),
     "the tracking URI {uri} is not supported: use sqlite:///<path>.db, a folder, or http(s)://host:port "
     "(MLFLOW_TRACKING_URI)"),
    (("must be in the 'active' state", "deleted"),
     "the run was deleted in MLflow: restore it (`mlflow runs restore --run-id <id>`) or train again"),
    (("malformed", "not a database", "no such table", "can't locate revision"),
     "the MLflow store {uri} is corrupt or of another MLflow version: move it aside (a new one is made) or "
     "restore it from a backup"),
    (("database or disk is full", "no space left"),
     "no space left for the MLflow store {uri}: free disk space, then run again"),
)


def _first_line(exc: BaseException) -> str:
    """The exception's message on one line (its class name when it has none)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def explain(exc: BaseException) -> str:
    """One line for an exception that is not one of mtt's own: what failed and what to do."""
    text = _first_line(exc)
    module = type(exc).__module__.split(".")[0]
    if module in ("mlflow", "sqlalchemy", "sqlite3", "alembic"):
        uri = os.environ.get("MLFLOW_TRACKING_URI") or "(the project's mlflow.db)"
        for needles, hint in MLFLOW_HINTS:
            if any(n in text.lower() for n in needles):
                return f"MLflow: {text[:300]}; {hint.format(uri=uri)}"
        return f"MLflow: {text[:300]} (tracking store {uri})"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"no space left on the device writing {exc.filename or 'an output'}: free disk space, then run again"
    if isinstance(exc, OutputError | ValueError | OSError):  # messages written for the user (ours, or a path's)
        return text
    if isinstance(exc, MemoryError):
        return "out of memory: run with fewer events or smaller steps (prepare.step_size, train.batch_size)"
    return (f"{type(exc).__name__}: {text[:300]} (unexpected: run again with --debug or MTT_DEBUG=1 for the "
            "traceback, and report it)")


def debugging(args: argparse.Namespace) -> bool:
    """Whether to show tracebacks: --debug, or MTT_DEBUG=1 in the environment."""
    return bool(getattr(args, "debug", False)) or os.environ.get("MTT_DEBUG", "") not in ("", "0")


def finish(name: str, args: argparse.Namespace, work: Callable[[], None]) -> int:
    """Run a command's work; its exit status, with clear one-line errors instead of tracebacks."""
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        work()
        return 0
    except Terminated:
        print(f"mtt {name}: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"mtt {name}: interrupted", file=sys.stderr)
        return 130
    except ValidationFailed as exc:
        print(f"mtt {name}: failed: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # ours, named; anything else: one line, the traceback behind --debug
        if debugging(args):
            traceback.print_exc()
        print(f"mtt {name}: error: {exc if isinstance(exc, MttError) else explain(exc)}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
