"""The project's local MLflow store as a physicist uses it: served light (`mtt ui`), and moved with the project
(`mtt relocate`).

`mlflow ui` on its defaults starts 4 web workers and a job runner with its own workers: 16 processes and ~3 GiB
on a 2-core laptop. One worker without job execution (MLflow's GenAI jobs, unused here) serves the same pages
with 2 processes and ~0.5 GiB. The store records absolute paths (artifact roots, each run's artifact URI, the
logged models' locations, the dataset sources, each MLmodel's `artifact_path`), so a copied or moved project
would still read the old tree; `relocate` rewrites them.
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
from pathlib import Path

from mtt.core import tracking
from mtt.core.errors import MttError

#: environment of the UI server: no job runner, no telemetry
UI_ENVIRONMENT = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}


class StoreError(MttError):
    """The store cannot be served or relocated as asked."""


def runs_url(base: str, experiment_id: str) -> str:
    """The UI page of an experiment's training runs (the runs table, not the GenAI overview) at `base`."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def server_command(uri: str, host: str, port: int) -> list[str]:
    """`mlflow server` on the store with one worker (what the UI of one person needs)."""
    mlflow = Path(sys.executable).with_name("mlflow")
    return [str(mlflow) if mlflow.exists() else "mlflow", "server", "--backend-store-uri", uri, "--host", host,
            "--port", str(port), "--workers", "1"]


def serve(experiment: str, host: str = "127.0.0.1", port: int = 5000) -> None:
    """Print the training-runs URL of `experiment` and replace this process with the UI server (with a tracking
    server as MLFLOW_TRACKING_URI, the server is the UI: print its URL and start nothing)."""
    uri = tracking.configure()
    experiment_id = tracking.ensure_experiment(experiment)
    if tracking.is_server(uri):
        print(f"mtt ui: {uri} serves the UI itself: the runs of experiment {experiment!r}: "
              f"{runs_url(uri, experiment_id)}")
        return
    print(f"mtt ui: the runs of experiment {experiment!r}: {runs_url(f'http://{host}:{port}', experiment_id)}",
          flush=True)
    command = server_command(uri, host, port)
    os.execve(command[0], command, {**os.environ, **UI_ENVIRONMENT})


# --- relocate ------------------------------------------------------------------------------------------------


def sqlite_path(uri: str) -> Path:
    """The database file of a sqlite:/// URI (relocation is for the local store only)."""
    if not uri.startswith("sqlite:///"):
        raise StoreError(f"{uri}: only a local SQLite store records this project's paths; a tracking server "
                         "keeps its own")
    path = Path(uri.removeprefix("sqlite:///"))
    if not path.is_file():
        raise StoreError(f"{path}: no MLflow store here")
    return path


def recorded_root(database: Path) -> Path:
    """The project folder the store was written in: the parent of its experiments' `mlartifacts` root."""
    with sqlite3.connect(database) as connection:
        locations = [row[0] for row in connection.execute("SELECT artifact_location FROM experiments")]
    roots = {Path(re.sub("^file://", "", location)).parent for location in locations
             if location and location.rstrip("/").endswith(f"/{tracking.ARTIFACTS}")}
    if len(roots) != 1:
        raise StoreError(f"{database}: experiments under {len(roots)} project folders ({', '.join(map(str, roots))}); "
                         "give the old one with --from")
    return roots.pop()


def text_columns(connection: sqlite3.Connection) -> dict[str, list[str]]:
    """Every table's text columns (where a path can be recorded)."""
    tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    columns = {}
    for table in tables:
        names = [row[1] for row in connection.execute(f'PRAGMA table_info("{table}")')
                 if any(kind in (row[2] or "").upper() for kind in ("CHAR", "TEXT", "CLOB"))]
        if names:
            columns[table] = names
    return columns


def rewrite_database(database: Path, old: Path, new: Path) -> dict[str, int]:
    """Replace the folder `old` by `new` at the start of every path the store records; rows changed per table."""
    before, after = f"{old}/", f"{new}/"
    changed: dict[str, int] = {}
    with sqlite3.connect(database) as connection:
        for table, names in text_columns(connection).items():
            for name in names:
                cursor = connection.execute(
                    f'UPDATE "{table}" SET "{name}" = REPLACE("{name}", ?, ?) WHERE instr("{name}", ?) > 0',
                    (before, after, before))
                if cursor.rowcount:
                    changed[table] = changed.get(table, 0) + cursor.rowcount
    return changed


def rewrite_mlmodels(artifacts: Path, old: Path, new: Path) -> int:
    """Point each logged model's MLmodel file at its new folder; files changed."""
    count = 0
    for mlmodel in artifacts.rglob("MLmodel"):
        text = mlmodel.read_text()
        if f"{old}/" in text:
            mlmodel.write_text(text.replace(f"{old}/", f"{new}/"))
            count += 1
    return count


def relocate(old: Path | None = None, start: str | os.PathLike[str] | None = None) -> dict[str, int]:
    """Rewrite the store of the project at `start` (default: cwd) from the folder it was written in to where
    it is now; print and return what changed."""
    new = tracking.repo_root(start)
    database = sqlite_path(tracking.tracking_uri(start))
    old = Path(old) if old is not None else recorded_root(database)
    if old == new:
        print(f"mtt relocate: {database} already records {new}: nothing to do")
        return {}
    changed = rewrite_database(database, old, new)
    changed["MLmodel files"] = rewrite_mlmodels(new / tracking.ARTIFACTS, old, new)
    listed = ", ".join(f"{table} {rows}" for table, rows in sorted(changed.items()) if rows) or "nothing"
    print(f"mtt relocate: {database}: {old} -> {new}; rows rewritten: {listed}")
    return changed
