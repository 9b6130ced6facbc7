"""MLflow plumbing in one place: where runs are stored and what lineage they carry.

The tracking URI defaults to an absolute ``sqlite:///<repo>/mlflow.db`` so that every way of running a stage
(`dvc repro`, `dvc exp run --queue` in a temporary workspace under ``.dvc/tmp``, `mlflow run .`) logs into the
same database. ``MLFLOW_TRACKING_URI`` overrides it (e.g. a tracking server).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

DB_NAME = "mlflow.db"
ARTIFACTS = "mlartifacts"
_MARKERS = ("dvc.yaml", "MLproject")


def repo_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The project root above `start` (default: cwd), looking through DVC's temporary experiment workspaces."""
    here = Path(start or Path.cwd()).resolve()
    parts = here.parts
    # `dvc exp run --queue/--temp` copies the repo to <root>/.dvc/tmp/exps/...: use <root>, not the copy.
    if ".dvc" in parts:
        idx = parts.index(".dvc")
        if idx + 1 < len(parts) and parts[idx + 1] == "tmp":
            return Path(*parts[:idx])
    for candidate in (here, *here.parents):
        if all((candidate / marker).exists() for marker in _MARKERS):
            return candidate
    return here


def in_project(start: str | os.PathLike[str] | None = None) -> bool:
    """Whether `start` (default: cwd) lies in a project folder (dvc.yaml and MLproject)."""
    root = repo_root(start)
    return all((root / marker).exists() for marker in _MARKERS)


def tracking_uri(start: str | os.PathLike[str] | None = None) -> str:
    """MLFLOW_TRACKING_URI if set, else the project's SQLite store as an absolute URI."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{repo_root(start) / DB_NAME}"


def configure(start: str | os.PathLike[str] | None = None) -> str:
    """Point MLflow at the tracking store and return the URI; a new SQLite store is set up under a file lock.

    Outside a project folder (and without MLFLOW_TRACKING_URI) it says where the runs will go instead of
    silently creating a stray mlflow.db. Two processes creating the same SQLite store at once would race in
    MLflow's schema migration; the lock makes the second wait for the first.
    """
    import mlflow

    uri = tracking_uri(start)
    if not os.environ.get("MLFLOW_TRACKING_URI") and not in_project(start):
        print(f"mtt: no project folder (with dvc.yaml and MLproject) at or above {Path(start or Path.cwd())}: "
              f"MLflow runs go to {uri}; set MLFLOW_TRACKING_URI to log elsewhere")
    mlflow.set_tracking_uri(uri)
    if uri.startswith("sqlite:///"):
        from filelock import FileLock
        from mlflow.tracking import MlflowClient

        database = Path(uri.removeprefix("sqlite:///"))
        database.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(database) + ".lock", timeout=300):
            MlflowClient(uri).search_experiments(max_results=1)  # creates and migrates the schema, once
    return uri


def process_tags() -> dict[str, str]:
    """Which process owns a run: host, pid and the process' start time (pids are reused)."""
    import socket

    import psutil

    return {"mtt.host": socket.gethostname(), "mtt.pid": str(os.getpid()),
            "mtt.process_start": f"{psutil.Process().create_time():.3f}"}


def _owner_gone(tags: dict[str, str]) -> bool:
    """True if the run's process (on this host) no longer runs."""
    import socket

    import psutil

    if tags.get("mtt.host") != socket.gethostname() or "mtt.pid" not in tags:
        return False
    try:
        process = psutil.Process(int(tags["mtt.pid"]))
        return abs(process.create_time() - float(tags.get("mtt.process_start", "0"))) > 1.0
    except psutil.NoSuchProcess:
        return True


def mark_dead_runs(experiment_id: str) -> list[str]:
    """Runs left RUNNING by a process that died without a word (SIGKILL, power loss): mark them KILLED."""
    from mlflow.entities import RunStatus
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    dead = [run for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'")
            if _owner_gone(run.data.tags)]
    for run in dead:
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
        print(f"mtt: run {run.info.run_id} ({run.info.run_name}) was left RUNNING by process "
              f"{run.data.tags['mtt.pid']}, which no longer runs: marked KILLED")
    return [run.info.run_id for run in dead]


def ensure_experiment(name: str, start: str | os.PathLike[str] | None = None) -> str:
    """The id of experiment `name`, created with its artifacts in <repo>/mlartifacts (an absolute path).

    MLflow's default artifact root is relative to the working directory, so runs started from DVC's temporary
    workspaces would otherwise scatter their artifacts.
    """
    import mlflow

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return mlflow.create_experiment(name, artifact_location=(repo_root(start) / ARTIFACTS).as_uri())


def git_state(root: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Git commit and dirty flag for run tags; empty strings outside a git checkout."""
    cwd = str(root or repo_root())
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"git_commit": "", "git_dirty": ""}
    return {"git_commit": commit, "git_dirty": str(bool(dirty)).lower()}


def log_stage_to_active_run(
    stage: str, params: dict, metrics: dict[str, float], artifact: str | os.PathLike[str] | None = None
) -> None:
    """Log a stage's params, headline metrics and manifest into the run that `mlflow run` started."""
    import mlflow

    with mlflow.start_run():  # resumes MLFLOW_RUN_ID
        mlflow.log_params({f"{stage}.{k}": v for k, v in params.items()})
        mlflow.log_metrics({f"{stage}/{k}": float(v) for k, v in metrics.items()})
        mlflow.set_tags(git_state())
        if artifact is not None and Path(artifact).exists():
            mlflow.log_artifact(str(artifact), artifact_path=stage)


def log_data_checks(summary_path: str | os.PathLike[str], docs_dir: str | os.PathLike[str] | None = None) -> None:
    """Attach the validate stage's summary (and Data Docs site) to the active MLflow run.

    Every training run then records which data checks its inputs passed: the counts as metrics, the JSON
    and the HTML site as artifacts under `data_checks/`.
    """
    import json

    import mlflow

    summary = json.loads(Path(summary_path).read_text())
    mlflow.log_metrics({"data_checks/critical_failures": summary["critical_failures"],
                        "data_checks/warnings": summary["warnings"],
                        **{f"data_checks/{split}_failed": s["failed"] for split, s in summary["splits"].items()}})
    mlflow.log_artifact(str(summary_path), artifact_path="data_checks")
    if docs_dir is not None and Path(docs_dir).is_dir():
        mlflow.log_artifacts(str(docs_dir), artifact_path="data_checks/data_docs")


#: MLflow's dataset-input context of each prepared split
SPLIT_CONTEXTS = {"train": "training", "val": "validation", "test": "testing"}
#: hex digits of the content SHA-256 kept as a dataset's digest (MLflow stores at most 36 characters)
DIGEST_LENGTH = 16


def split_dataset(path: str | os.PathLike[str], sha256: str) -> object:
    """A prepared Parquet split as an MLflow dataset, without reading its rows: source the file's path, digest
    the first DIGEST_LENGTH hex digits of its content SHA-256 (the hash the run's lineage already computed),
    schema and row count from the Parquet footer; named <folder>/<file stem>, e.g. prepared/train."""
    import json

    import pyarrow.parquet as pq
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource
    from mlflow.types import ColSpec, Schema

    class ParquetDataset(MetaDataset):
        """A MetaDataset with the row count as its profile."""

        def __init__(self, rows: int, **kwargs: object) -> None:
            self.rows = rows
            super().__init__(**kwargs)

        @property
        def profile(self) -> dict[str, int]:
            return {"num_rows": self.rows}

        def to_dict(self) -> dict[str, str]:
            return {**super().to_dict(), "profile": json.dumps(self.profile)}

    path = Path(path).resolve()
    footer = pq.read_metadata(path)
    schema = Schema([ColSpec(_mlflow_type(field.type), field.name) for field in footer.schema.to_arrow_schema()])
    return ParquetDataset(footer.num_rows, source=LocalArtifactDatasetSource(str(path)), name=f"{path.parent.name}/"
                          f"{path.stem}", digest=sha256[:DIGEST_LENGTH], schema=schema)


def _mlflow_type(arrow_type: object) -> str:
    """MLflow's column type for a Parquet column type (unsigned integers as long, categories as string)."""
    import pyarrow as pa

    if pa.types.is_float32(arrow_type) or pa.types.is_float16(arrow_type):
        return "float"
    if pa.types.is_floating(arrow_type):
        return "double"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type):
        small = arrow_type.bit_width < 32 or (arrow_type.bit_width == 32 and pa.types.is_signed_integer(arrow_type))
        return "integer" if small else "long"
    if pa.types.is_timestamp(arrow_type):
        return "datetime"
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return "binary"
    return "string"


def log_split_inputs(splits: dict[str, tuple[str | os.PathLike[str], str]]) -> None:
    """Log the prepared splits a run read (split -> (path, content SHA-256)) as its dataset inputs, with the
    context training, validation or testing: the runs table's Dataset column then tells runs on different
    data apart."""
    import mlflow

    datasets = [split_dataset(path, sha256) for path, sha256 in splits.values()]
    mlflow.log_inputs(datasets, contexts=[SPLIT_CONTEXTS.get(split, split) for split in splits],
                      tags_list=[None] * len(datasets))
