"""`mlflow run . --env-manager local` runs the MLproject entry points and logs a run."""

from __future__ import annotations

import json

import mlflow
from integration.conftest import run
from mlflow.tracking import MlflowClient


def test_mlflow_run_simulate_entry_point(repo_copy, tool_env, tmp_path):
    out = tmp_path / "mlraw"
    run(["mlflow", "run", str(repo_copy), "--env-manager", "local", "-e", "simulate",
         "-P", "n_events=500", "-P", "workers=1", "-P", f"out={out}"], repo_copy, tool_env)
    assert json.loads((out / "simulation.json").read_text())["n_events"] == 500

    client = MlflowClient(tracking_uri=tool_env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs(experiment_ids=["0"])
    assert len(runs) == 1
    logged = runs[0]
    assert logged.info.status == "FINISHED"
    assert logged.data.params["n_events"] == "500"  # the entry point's parameter
    assert logged.data.params["simulate.n_events"] == "500"  # what the stage actually used
    assert logged.data.params["simulate.level"] == "parton"  # taken from params.yaml
    assert logged.data.metrics["simulate/n_events"] == 500
    artifacts = [a.path for a in client.list_artifacts(logged.info.run_id, "simulate")]
    assert artifacts == ["simulate/simulation.json"]
    mlflow.set_tracking_uri(None)
