"""Crash-safe output: write under a temporary name, rename into place only on success."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: the record simulate writes next to its ROOT files (params, seeds, chunks); prepare carries its process on
SIMULATION_MANIFEST = "simulation.json"


class OutputError(OSError):
    """An output location that cannot be written."""


def check_writable_dir(path: str | os.PathLike[str]) -> Path:
    """Fail before any work if the folder `path` cannot be created or replaced."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"output {path}: exists and is not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as exc:
        raise OutputError(f"output {path}: cannot write in {path.parent}: {exc.strerror or exc}") from None
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    """Whether a process with this id runs (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _prefix(path: Path) -> str:
    """Temporary names carry the writing process' id, so a later run can tell a stale one from a live one."""
    return f".{path.name}.{os.getpid()}."


def remove_stale(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files and folders next to `path` left by processes that no longer run (a kill
    the stage could not catch); say what was removed."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\.[^/]*\.(tmp|old)$")
    for entry in path.parent.iterdir():
        match = pattern.match(entry.name)
        if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
            print(f"removed {entry}: a temporary output of process {match.group(1)}, which no longer runs")
    return removed


@contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `path`; it becomes `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    fd, tmp_name = tempfile.mkstemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success it replaces `path` as a whole, else it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | os.PathLike[str], data: Any, indent: int = 2) -> None:
    """Write `data` as JSON atomically (numpy scalars and paths as strings), with a final newline."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=indent, default=str) + "\n")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Content hash of a file: what outputs and run lineage record of the inputs actually read."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
