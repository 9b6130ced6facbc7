"""MLflow plumbing: one absolute SQLite store at the repo root, also from DVC's temporary workspaces."""

from __future__ import annotations

from pathlib import Path

from mtt.core.tracking import repo_root, tracking_uri

REPO = Path(__file__).resolve().parents[2]


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


# --- a tracking server (MLFLOW_TRACKING_URI=http://...) ----------------------------------------------------


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_server_that_is_down_is_named_in_one_line_at_once(monkeypatch):
    import time

    import pytest

    from mtt.core.errors import MttError
    from mtt.core.tracking import TrackingError, configure, require_server

    uri = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    started = time.monotonic()
    with pytest.raises(TrackingError) as error:
        configure()
    assert time.monotonic() - started < 5
    message = str(error.value)
    assert isinstance(error.value, MttError) and "\n" not in message
    assert message.startswith(f"no MLflow tracking server answers at {uri} (")
    assert message.endswith("start it with `make server` or unset MLFLOW_TRACKING_URI")
    with pytest.raises(TrackingError, match="answers at http://127.0.0.1"):
        require_server()


def test_a_local_store_needs_no_server(tmp_path):
    from mtt.core.tracking import require_server

    require_server(f"sqlite:///{tmp_path}/mlflow.db")  # nothing to check, nothing raised
    require_server(f"file://{tmp_path}/mlruns")


def _health_server(status: int, api: tuple[int, bytes] = (404, b"")):
    """A local HTTP server whose /health answers `status` and its API `api` (status, body); (URI, server)."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code, body = (status, b"OK") if self.path == "/health" else api
            self.send_response(code)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


def test_a_server_that_answers_its_health_check_passes():
    import pytest

    from mtt.core.tracking import TrackingError, require_server

    uri, server = _health_server(200)
    try:
        require_server(uri)
        require_server(uri + "/")
    finally:
        server.shutdown()
        server.server_close()
    uri, server = _health_server(404)  # something else listens there
    try:
        with pytest.raises(TrackingError, match="/health answered HTTP 404"):
            require_server(uri)
    finally:
        server.shutdown()
        server.server_close()


def test_mtt_train_stops_before_reading_anything_when_the_server_is_down(monkeypatch, tmp_path, capsys):
    from mtt import cli

    uri = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    # neither the params file nor the data exist: the server is checked first
    code = cli.main(["train", "--params", str(tmp_path / "missing.yaml"), "--prepared", str(tmp_path / "none"),
                     "--model", str(tmp_path / "models")])
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"mtt train: error: no MLflow tracking server answers at {uri}")
    assert not (tmp_path / "models").exists()


def test_only_commands_that_use_mlflow_need_the_server(monkeypatch):
    import argparse

    from mtt.cli import discover

    commands = discover()
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    none = argparse.Namespace()
    assert commands["train"].uses_tracking(none) and commands["promote"].uses_tracking(none)
    assert not commands["simulate"].uses_tracking(none)
    assert not commands["predict"].uses_tracking(argparse.Namespace(model="models"))
    assert commands["predict"].uses_tracking(argparse.Namespace(model="models:/mtt-mtt@champion"))
    monkeypatch.setenv("MLFLOW_RUN_ID", "abc")  # under `mlflow run` every stage logs into the run
    assert commands["simulate"].uses_tracking(none)


def test_experiments_on_a_server_use_its_artifact_store(monkeypatch, tmp_path):
    import mlflow

    from mtt.core.tracking import ARTIFACTS, ensure_experiment

    created = {}
    monkeypatch.setattr(mlflow, "get_experiment_by_name", lambda name: None)
    monkeypatch.setattr(mlflow, "create_experiment", lambda name, **kwargs: created.setdefault(name, kwargs) and "7")
    monkeypatch.setattr(mlflow, "get_tracking_uri", lambda: "http://127.0.0.1:5001")
    assert ensure_experiment("team", start=tmp_path) == "7"
    assert "artifact_location" not in created["team"]  # the server's proxied store, mlflow-artifacts:/
    monkeypatch.setattr(mlflow, "get_tracking_uri", lambda: f"sqlite:///{tmp_path}/mlflow.db")
    ensure_experiment("local", start=tmp_path)
    assert created["local"]["artifact_location"] == (tmp_path / ARTIFACTS).as_uri()


def test_experiments_are_of_the_custom_model_kind_so_the_ui_opens_on_their_runs(store, tmp_path):
    """MLflow's UI reads an experiment's kind from the tag `mlflow.experimentKind` (`custom_model_development`: its
    "Machine learning" kind, opened on the runs): a new experiment has it, an older one gets it, a kind a user
    chose is kept."""
    from mtt.core.tracking import ARTIFACTS, EXPERIMENT_KIND, ensure_experiment

    assert EXPERIMENT_KIND == {"mlflow.experimentKind": "custom_model_development"}
    created = store.get_experiment(ensure_experiment("mtt", start=tmp_path))
    assert created.tags["mlflow.experimentKind"] == "custom_model_development"
    assert created.artifact_location == (tmp_path / ARTIFACTS).as_uri()
    older = store.create_experiment("before the tag")
    assert "mlflow.experimentKind" not in store.get_experiment(older).tags
    assert ensure_experiment("before the tag", start=tmp_path) == older
    assert store.get_experiment(older).tags["mlflow.experimentKind"] == "custom_model_development"
    store.set_experiment_tag(older, "mlflow.experimentKind", "genai_development")  # a user's choice in the UI
    ensure_experiment("before the tag", start=tmp_path)
    assert store.get_experiment(older).tags["mlflow.experimentKind"] == "genai_development"  # is kept


def test_an_experiment_another_process_created_first_is_used(monkeypatch, tmp_path):
    import mlflow
    from mlflow.entities import Experiment, ExperimentTag
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS

    from mtt.core.tracking import ensure_experiment

    other = Experiment("3", "mtt", "mlflow-artifacts:/3", "active", tags=[ExperimentTag("mlflow.experimentKind", "x")])
    found = iter([None, other, other])

    def create(name, **kwargs):
        raise MlflowException(f"Experiment(name={name}) already exists.", RESOURCE_ALREADY_EXISTS)

    monkeypatch.setattr(mlflow, "get_experiment_by_name", lambda name: next(found))
    monkeypatch.setattr(mlflow, "create_experiment", create)
    monkeypatch.setattr(mlflow, "get_tracking_uri", lambda: "http://127.0.0.1:5001")
    assert ensure_experiment("mtt", start=tmp_path) == "3"


def test_a_server_that_refuses_the_host_name_says_so():
    import pytest

    from mtt.core.tracking import TrackingError, require_server

    # what `mlflow server --allowed-hosts` answers a Host header it does not list (its health check is exempt)
    uri, server = _health_server(200, (403, b"Invalid Host header - possible DNS rebinding attack detected"))
    try:
        with pytest.raises(TrackingError, match=r"refuses the host name '127.0.0.1:\d+': start it with --allowed"):
            require_server(uri)
    finally:
        server.shutdown()
        server.server_close()
    uri, server = _health_server(200, (403, b"Permission denied"))  # a login the client's credentials may pass
    try:
        require_server(uri)
    finally:
        server.shutdown()
        server.server_close()
