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
