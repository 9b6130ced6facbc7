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


def tracking_uri(start: str | os.PathLike[str] | None = None) -> str:
    """MLFLOW_TRACKING_URI if set, else the project's SQLite store as an absolute URI."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{repo_root(start) / DB_NAME}"


def configure(start: str | os.PathLike[str] | None = None) -> str:
    """Point MLflow at the project's tracking store and return the URI."""
    import mlflow

    uri = tracking_uri(start)
    mlflow.set_tracking_uri(uri)
    return uri


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
