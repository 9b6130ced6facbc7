"""Crash-safe output: write under a temporary name, rename into place only on success."""

from __future__ import annotations

import datetime
import hashlib
import itertools
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from mtt.core.errors import OutputRefused

#: the record simulate writes next to its ROOT files (params, seeds, chunks); prepare carries its process on
SIMULATION_MANIFEST = "simulation.json"


#: what a stage writes into an output folder it owns: which stage wrote it and the files it wrote, so that a
#: later run replaces only its own output, never a folder holding the user's files
OUTPUT_RECORD = ".mtt-output.json"
#: what a stage keeps when it replaces its output folder (DVC's entry for a cached folder inside it, e.g.
#: eval/.gitignore naming eval/plots): never a reason to refuse the folder
CARRIED = frozenset({".gitignore"})
#: files whose presence marks a folder as a project (or a repository): never an output
PROJECT_FILES = (".git", "dvc.yaml", "MLproject", "pyproject.toml", "params.yaml")


#: the date in every ROOT header mtt writes: ROOT's datime epoch (its code counts years from 1995), so the same
#: content gives the same bytes; when a file was made lives in its mtime and in the MLflow run
ROOT_DATIME = datetime.datetime(1995, 1, 1)
#: the namespace of the (name-based, uuid5) UUIDs in mtt's ROOT files
ROOT_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_OID, "mtt ROOT output")
#: whether uproot's time encoder writes ROOT_DATIME: on only inside `reproducible_root`, in that thread or task
_FIXED_ROOT_TIME: ContextVar[bool] = ContextVar("mtt_fixed_root_time", default=False)


class OutputError(OSError):
    """An output location that cannot be written."""


def _within(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or lies inside it (both resolved)."""
    return path == folder or folder in path.parents


def check_not_protected(path: str | os.PathLike[str]) -> None:
    """Refuse an output that is the working folder, one above it, the home folder or a project's root: replacing
    it would delete everything in it."""
    target = Path(path).resolve()
    cwd = Path.cwd().resolve()
    if _within(cwd, target):
        where = "the current folder" if target == cwd else f"a folder above the current one ({cwd})"
        raise OutputRefused(f"output {path}: is {where}; a stage replaces its output folder as a whole, so this "
                            "would delete everything in it: choose a new folder, e.g. data/raw")
    if target == Path.home().resolve() or target == Path(target.anchor):
        raise OutputRefused(f"output {path}: is {'the home folder' if target.parent != target else 'the root'}; "
                            "choose a new folder")
    marks = [name for name in PROJECT_FILES if (target / name).exists()]
    if marks:
        raise OutputRefused(f"output {path}: is a project folder (it holds {', '.join(marks)}); a stage replaces its "
                            "output folder as a whole: choose a folder inside it, e.g. data/raw")


def check_apart(output: str | os.PathLike[str], inputs: list[str | os.PathLike[str]]) -> None:
    """Refuse an output that is, contains or lies inside one of the inputs: writing it would replace what is
    being read."""
    target = Path(output).resolve()
    for source in sorted(inputs, key=lambda source: Path(source).resolve() != target):  # 'is' named first
        where = Path(source).resolve()
        if target == where:
            relation = "is"
        elif where.parent != where and _within(where, target):
            relation = "contains"
        elif _within(target, where):
            relation = "lies inside"
        else:
            continue
        raise OutputRefused(f"output {output}: {relation} the input {source}; writing it would replace what is "
                            "being read: choose an output apart from every input")


def folder_entries(folder: str | os.PathLike[str]) -> list[str]:
    """The files and empty folders (with a trailing '/') under `folder`, relative and sorted, the output record
    left out: what a stage wrote, or what a folder holds."""
    folder = Path(folder)
    entries = []
    for entry in folder.rglob("*"):
        name = entry.relative_to(folder).as_posix()
        if entry.is_dir() and not entry.is_symlink():
            if not any(entry.iterdir()):
                entries.append(name + "/")
        elif name != OUTPUT_RECORD:
            entries.append(name)
    return sorted(entries)


def foreign_files(folder: str | os.PathLike[str], stage: str) -> list[str]:
    """The files of an existing folder that `stage` did not write there (none: an empty folder, or the stage's own
    earlier output as its record lists it)."""
    folder = Path(folder)
    present = [entry for entry in folder_entries(folder) if entry not in CARRIED]
    if not present:
        return []
    try:
        record = json.loads((folder / OUTPUT_RECORD).read_text())
    except (OSError, ValueError):
        return present
    if not isinstance(record, dict) or record.get("stage") != stage or not isinstance(record.get("files"), list):
        return present
    return sorted(set(present) - set(record["files"]))


def check_output_dir(path: str | os.PathLike[str], stage: str, inputs: list[str | os.PathLike[str]] = (),
                     overwrite: bool = False) -> Path:
    """Before any work: refuse an output folder whose replacement would lose the user's files (the project, an
    input, files this stage did not write unless `overwrite`), then check it can be written."""
    path = Path(path)
    check_not_protected(path)
    check_apart(path, list(inputs))
    if path.is_dir() and not overwrite:
        foreign = foreign_files(path, stage)
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise OutputRefused(f"output {path}: holds files that mtt {stage} did not write ({shown}); it replaces "
                                "its output folder as a whole, so they would be deleted: choose a new or empty "
                                "folder, or give --overwrite to replace it")
    return check_writable_dir(path)


def check_output_file(path: str | os.PathLike[str], inputs: list[str | os.PathLike[str]] = ()) -> Path:
    """Before any work: refuse an output file that is or lies inside an input, or is a folder; check it can be
    written."""
    path = Path(path)
    check_apart(path, list(inputs))
    if path.is_dir():
        raise OutputRefused(f"output {path}: is a folder; give a file name")
    return _writable_parent(path)


def check_writable_dir(path: str | os.PathLike[str]) -> Path:
    """Fail before any work if the folder `path` cannot be created or replaced."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"output {path}: exists and is not a folder")
    return _writable_parent(path)


def _writable_parent(path: Path) -> Path:
    """`path`, once its folder exists and takes a new file (what an output needs, checked before any work)."""
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
def atomic_dir(path: str | os.PathLike[str], stage: str | None = None) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success it replaces `path` as a whole, else it is removed. With a
    `stage`, the folder gets the record of what that stage wrote (`OUTPUT_RECORD`), which lets it be replaced
    again."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if stage is not None:
            for name in CARRIED:
                if (path / name).is_file() and not (tmp / name).exists():
                    shutil.copy2(path / name, tmp / name)
            record = {"stage": stage, "files": folder_entries(tmp)}
            (tmp / OUTPUT_RECORD).write_text(json.dumps(record, indent=1) + "\n")
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


@contextmanager
def atomic_named_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Like `atomic_file`, but the temporary file has `path`'s own name (in a temporary folder next to it): for
    formats that record their file name (ROOT does), so the bytes do not carry a random temporary name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    folder = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        tmp = folder / path.name
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def root_uuids(identity: str) -> Callable[[], uuid.UUID]:
    """uproot's `uuid_function` for one file: the n-th UUID is uuid5(ROOT_UUID_NAMESPACE, "identity:n"), so
    rewriting the same file gives the same UUIDs (uproot's default, uuid1, holds the time and the host)."""
    count = itertools.count()
    return lambda: uuid.uuid5(ROOT_UUID_NAMESPACE, f"{identity}:{next(count)}")


def _fix_root_time() -> None:
    """Route uproot's time encoder through the `_FIXED_ROOT_TIME` switch (once per process).

    uproot 5.7 takes no time argument: every fDatime (file and directory headers, each key, each basket) is
    `uproot._util.datetime_to_code(datetime.now())` at the moment of writing. Two ways to fix it were weighed:
    rewriting the datime bytes after writing needs the offset of every key header, which uproot does not report
    (the basket keys' are in the compressed TTree, a friend tree or a histogram adds others), so a missed kind of
    key fails silently; replacing this one function covers every header uproot writes. It is not swapped in and
    out around a write (two threads doing that restore each other's copy): a wrapper that passes the time
    through stays installed, and writes ROOT_DATIME only where `reproducible_root` switched it on, in that thread
    or task (a context variable), so no other uproot write in the process changes. A test checks every header's
    date, so an uproot that stops calling it fails there.
    """
    import uproot._util

    encode = uproot._util.datetime_to_code
    if getattr(encode, "mtt_fixed_time", False):
        return

    def datetime_to_code(value: datetime.datetime) -> int:
        return encode(ROOT_DATIME if _FIXED_ROOT_TIME.get() else value)

    datetime_to_code.mtt_fixed_time = True  # type: ignore[attr-defined]
    uproot._util.datetime_to_code = datetime_to_code


@contextmanager
def reproducible_root(path: str | os.PathLike[str], identity: str, **options: Any) -> Iterator[Any]:
    """`uproot.recreate(path, **options)`, written atomically, whose bytes depend on the content only: UUIDs
    from `identity` (what makes this file: e.g. the seed and the chunk), every date ROOT_DATIME, and the file's
    own name inside it, not a temporary one."""
    import uproot

    _fix_root_time()
    token = _FIXED_ROOT_TIME.set(True)
    try:
        with atomic_named_file(path) as tmp, uproot.recreate(tmp, uuid_function=root_uuids(identity),
                                                             **options) as root_file:
            yield root_file
    finally:
        _FIXED_ROOT_TIME.reset(token)


def portable_path(path: str | os.PathLike[str]) -> str:
    """`path` relative to the working folder when it lies inside it, else as given (POSIX separators): what an
    output records of its inputs, so the same run in another clone writes the same bytes."""
    given = Path(path)
    absolute = Path(os.path.normpath(given.absolute()))
    for base in (Path.cwd(), Path.cwd().resolve()):
        if _within(absolute, base):
            return absolute.relative_to(base).as_posix()
    return given.as_posix()


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
