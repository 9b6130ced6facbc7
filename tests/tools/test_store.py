"""The local MLflow store: the UI's command and URL, and a store that moves with its project."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from mtt.core import tracking
from mtt.tools.store import store


def test_ui_is_one_worker_without_job_runner_or_telemetry():
    command = store.server_command("sqlite:////p/mlflow.db", "127.0.0.1", 5000)
    assert command[1:] == ["server", "--backend-store-uri", "sqlite:////p/mlflow.db", "--host", "127.0.0.1",
                           "--port", "5000", "--workers", "1"]
    assert Path(command[0]).name == "mlflow"
    assert store.UI_ENVIRONMENT == {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    assert store.runs_url("http://127.0.0.1:5000", "3") == ("http://127.0.0.1:5000/#/experiments/3/runs"
                                                      "?workflowType=machine_learning")


def _project(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "dvc.yaml").write_text("stages: {}\n")
    (folder / "MLproject").write_text("name: mtt\n")
    return folder


def _store_with_a_run(project: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A run with an artifact, a dataset input and a model folder whose MLmodel names its absolute location."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(project)
    tracking.configure(project)
    experiment = tracking.ensure_experiment("mtt", start=project)
    (project / "notes.txt").write_text("a note\n")
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_artifact(str(project / "notes.txt"))
        mlflow.log_metric("epoch/val_loss", 0.5, step=0)
    model = project / tracking.ARTIFACTS / "models" / "m-1" / "artifacts"
    model.mkdir(parents=True)
    (model / "MLmodel").write_text(f"artifact_path: file://{model}\nflavors: {{}}\n")
    mlflow.set_tracking_uri(None)
    return run.info.run_id


def test_relocate_points_a_copied_project_at_its_new_folder(tmp_path, monkeypatch, capsys):
    old = _project(tmp_path / "old")
    run_id = _store_with_a_run(old, monkeypatch)
    new = tmp_path / "moved" / "mtt"
    shutil.copytree(old, new)
    shutil.rmtree(old)  # nothing may still point there
    monkeypatch.chdir(new)
    assert store.recorded_root(new / tracking.DB_NAME) == old
    changed = store.relocate(start=new)
    assert changed["experiments"] >= 1 and changed["runs"] == 1 and changed["MLmodel files"] == 1
    assert f"{old} -> {new}" in capsys.readouterr().out
    client = MlflowClient(f"sqlite:///{new / tracking.DB_NAME}")
    run = client.get_run(run_id)
    assert run.info.artifact_uri.startswith(f"file://{new}/{tracking.ARTIFACTS}/")
    downloaded = client.download_artifacts(run_id, "notes.txt", str(tmp_path))
    assert Path(downloaded).read_text() == "a note\n"
    assert str(old) not in (new / tracking.ARTIFACTS / "models" / "m-1" / "artifacts" / "MLmodel").read_text()
    assert store.relocate(start=new) == {}  # a second call has nothing to do


def test_relocate_refuses_a_tracking_server(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    with pytest.raises(store.StoreError, match="only a local SQLite store"):
        store.relocate()


def test_relocate_names_a_missing_store(tmp_path, monkeypatch):
    project = _project(tmp_path / "empty")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(store.StoreError, match=f"{project / tracking.DB_NAME}: no MLflow store here"):
        store.relocate(start=project)
