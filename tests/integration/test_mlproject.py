"""`mlflow run . --env-manager local` runs the MLproject entry points and logs a run."""

from __future__ import annotations

import json

import mlflow
import pytest
from integration.conftest import run
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.integration


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


def test_mlflow_run_train_entry_point(repo_copy, tool_env):
    run(["mtt", "simulate", "-S", "n_events=1500"], repo_copy, tool_env)
    run(["mtt", "prepare"], repo_copy, tool_env)
    run(["mtt", "validate", "-S", "drift.action=warn"], repo_copy, tool_env)  # the reference: scalers fitted on train
    run(["mlflow", "run", str(repo_copy), "--env-manager", "local", "-e", "train", "-P", "epochs=1",
         "-P", "preset=seed_baseline"], repo_copy, tool_env)
    client = MlflowClient(tracking_uri=tool_env["MLFLOW_TRACKING_URI"])
    (logged,) = client.search_runs(experiment_ids=["0"])
    assert logged.info.status == "FINISHED"
    assert logged.data.params["epochs"] == "1" and logged.data.params["train.epochs"] == "1"
    assert logged.data.params["train.feature_set"] == "seed"  # the preset's overlay
    assert "best_val_loss" in logged.data.metrics
    assert [m.step for m in client.get_metric_history(logged.info.run_id, "epoch/val_width_ratio")] == [0]
    mlflow.set_tracking_uri(tool_env["MLFLOW_TRACKING_URI"])
    assert mlflow.models.get_model_info(f"runs:/{logged.info.run_id}/model").signature is not None
    assert (repo_copy / "models" / "default" / "model.keras").exists()  # no --config: the default's folders
    mlflow.set_tracking_uri(None)
    # the evaluate entry point logs the model's figures (not the baselines') into the training run and into the run
    # `mlflow run` started
    run(["mlflow", "run", str(repo_copy), "--env-manager", "local", "-e", "evaluate", "-P", "split=val"],
        repo_copy, tool_env)
    runs = client.search_runs(experiment_ids=["0"])
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    for evaluated in runs:
        assert {"val/model.resolution", "val/model.resolution_ratio"} <= set(evaluated.data.metrics)
        assert "val/baseline_ellipse.resolution" not in evaluated.data.metrics
        assert evaluated.data.tags["eval.model_run_id"] == logged.info.run_id
