"""Tracking stores and model files: a new SQLite store set up by two processes at once, a stray store
outside the project, a pickle in a shared reference, broken model files, an unwritable output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mtt.cli import main
from mtt.core import tracking
from mtt.core.errors import ArtifactError
from mtt.core.preprocessing import load_scalers

#: two processes start a run in the same, not yet existing, SQLite store the moment a flag file appears
RACER = """
import os, sys, time, pathlib
flag = pathlib.Path(sys.argv[1])
while not flag.exists():
    time.sleep(0.001)
import mlflow
from mtt.core import tracking
tracking.configure()
experiment = tracking.ensure_experiment("race")
with mlflow.start_run(experiment_id=experiment):
    mlflow.log_metric("x", 1.0)
"""


@pytest.mark.slow  # two interpreters importing MLflow
def test_two_processes_create_the_same_sqlite_store(tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path / "go")], env=env, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    (tmp_path / "go").touch()
    for racer in racers:
        _, err = racer.communicate(timeout=300)
        assert racer.returncode == 0, err[-3000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("race").experiment_id])
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)


def test_outside_a_project_it_says_where_runs_go(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    uri = tracking.configure()
    assert uri == f"sqlite:///{tmp_path}/mlflow.db"
    assert f"no project folder (with dvc.yaml and MLproject) at or above {tmp_path}" in capsys.readouterr().out
    import mlflow

    mlflow.set_tracking_uri(None)


def test_a_pickle_in_the_reference_is_never_unpickled(tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    arrays = {"header": np.array(json.dumps({"standard": {"kind": "standard", "columns": ["a"], "log_mask": [False]}})),
              "standard/mean_": np.array([Boom()], dtype=object)}
    np.savez(tmp_path / "scalers.npz", **arrays)
    with pytest.raises(ArtifactError, match="scalers.npz: not a readable scaler file .*allow_pickle"):
        load_scalers(tmp_path / "scalers.npz")
    assert not (tmp_path / "pwned").exists()


def test_broken_model_files_are_named_by_evaluate(tmp_path, capsys):
    models = tmp_path / "models"
    models.mkdir()
    (models / "model.json").write_text('{"features": ["a"')
    assert main(["evaluate", "--params", str(tmp_path / "missing.yaml"), "--model", str(models)]) == 2
    assert "params file not found" in capsys.readouterr().err
    from pathlib import Path

    params = Path(__file__).resolve().parents[2] / "params.yaml"
    assert main(["evaluate", "--params", str(params), "--model", str(models), "--out", str(tmp_path / "eval")]) == 2
    assert f"{models / 'model.json'}: not valid JSON" in capsys.readouterr().err
    (models / "model.json").write_text('{"features": ["a", "b"]}')
    (models / "model.keras").write_bytes(b"not a zip")
    assert main(["evaluate", "--params", str(params), "--model", str(models), "--out", str(tmp_path / "eval")]) == 2
    assert f"{models / 'model.keras'}: cannot be loaded as a Keras model" in capsys.readouterr().err


def test_an_unwritable_output_is_named(small_sim, tmp_path, capsys):
    """(Tests run as root here, so a read-only folder is writable: the output's parent is a file instead.)"""
    raw, _, _ = small_sim
    (tmp_path / "a_file").write_text("")
    out = tmp_path / "a_file" / "prepared"
    assert main(["prepare", "--input", str(raw), "--out", str(out), "-S", "workers=1"]) == 2
    assert f"output {out}: cannot write in {tmp_path / 'a_file'}" in capsys.readouterr().err
