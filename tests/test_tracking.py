"""MLflow plumbing: one absolute SQLite store at the repo root, also from DVC's temporary workspaces."""

from __future__ import annotations

from pathlib import Path

from mtt.tracking import git_state, repo_root, tracking_uri

REPO = Path(__file__).resolve().parents[1]


def test_default_uri_is_absolute_sqlite_at_the_repo_root(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(REPO / "src" / "mtt") == f"sqlite:///{REPO}/mlflow.db"


def test_queued_experiment_workspace_logs_into_the_main_store(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    workspace = tmp_path / "proj" / ".dvc" / "tmp" / "exps" / "tmpabc123"
    workspace.mkdir(parents=True)
    (workspace / "dvc.yaml").write_text("stages: {}\n")
    (workspace / "MLproject").write_text("name: mtt\n")
    assert repo_root(workspace) == tmp_path / "proj"
    assert tracking_uri(workspace) == f"sqlite:///{tmp_path / 'proj'}/mlflow.db"


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri() == "http://127.0.0.1:5000"


def test_git_state_outside_a_checkout(tmp_path):
    assert git_state(tmp_path) == {"git_commit": "", "git_dirty": ""}


def test_log_data_checks_attaches_summary_and_docs(tmp_path):
    import json

    import mlflow
    from mlflow.tracking import MlflowClient

    from mtt.tracking import ensure_experiment, log_data_checks

    summary = tmp_path / "validation.json"
    summary.write_text(json.dumps({"critical_failures": 0, "warnings": 2,
                                   "splits": {"val": {"evaluated": 10, "passed": 9, "failed": 1}}}))
    docs = tmp_path / "docs"
    (docs / "validations").mkdir(parents=True)
    (docs / "index.html").write_text("<html>data docs</html>")
    (docs / "validations" / "val.html").write_text("<html>val</html>")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    try:
        experiment = ensure_experiment("checks", start=tmp_path)
        assert ensure_experiment("checks", start=tmp_path) == experiment
        with mlflow.start_run(experiment_id=experiment) as run:
            log_data_checks(summary, docs)
        assert (tmp_path / "mlartifacts" / run.info.run_id / "artifacts" / "data_checks" / "validation.json").exists()
        client = MlflowClient(tracking_uri=uri)
        logged = client.get_run(run.info.run_id)
        assert logged.data.metrics["data_checks/warnings"] == 2 and logged.data.metrics["data_checks/val_failed"] == 1
        names = {a.path for a in client.list_artifacts(run.info.run_id, "data_checks")}
        assert names == {"data_checks/validation.json", "data_checks/data_docs"}
        assert {a.path for a in client.list_artifacts(run.info.run_id, "data_checks/data_docs")} == {
            "data_checks/data_docs/index.html", "data_checks/data_docs/validations"}
    finally:
        mlflow.set_tracking_uri(None)
