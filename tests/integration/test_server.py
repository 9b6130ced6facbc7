"""The team tracking server of `make server`: a real PostgreSQL and `mlflow server` with a proxied artifact store,
started by scripts/server.sh on free ports with a temporary data folder, with MLflow's basic-auth app on: the
tests' clients log in as the admin (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, the password from the
file the first start writes), as a team's would (tests/reliability/test_security.py checks the refusals).

A training run logged through the server reads back whole (params, per-epoch metrics, artifacts, the model, the
registered version with alias `candidate`); four training processes at once lose no metric, on the server and
on the default SQLite store; a server that is down stops `mtt train` in one line before any work; a wrong
PostgreSQL password stops the server script in one line.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from mtt.core.dataset import FEATURE_SETS
from mtt.core.metric_names import epoch_metric
from mtt.stages.train.params import TrainParams
from mtt.stages.train.stage import TrainPaths, run_train

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "server.sh"
BIN = Path(sys.executable).parent
#: the figures the epoch logger writes every epoch, as `epoch/<name>` (physics) or `watch/<name>` (diagnostics)
EPOCH_FIGURES = ("loss", "val_loss", "val_rmse_gev", "learning_rate", "grad_norm", "val_resolution", "val_bias",
                 "val_width_ratio", "dead_relu_fraction", "output_bias")
#: concurrent training processes, and the epochs of each
PROCESSES, EPOCHS = 4, 4
#: a training process: run_train on the prepared sample, logged where MLFLOW_TRACKING_URI says; prints the run id
CHILD = """
import sys
from pathlib import Path
from mtt.stages.train.params import TrainParams
from mtt.stages.train.stage import TrainPaths, run_train
prepared, out, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
params = TrainParams(epochs=int(sys.argv[4]), batch_size=64, width=16, depth=1, registered_model="mtt-concurrent")
paths = TrainPaths(prepared=prepared, reference=prepared.parent / "reference", model=out / "models")
print("RUN_ID", run_train(params, paths, name)["run_id"])
"""
#: a process that creates experiment argv[3] once all argv[2] processes are ready (files in folder argv[1])
RACE = """
import sys, time
from pathlib import Path
from mtt.core import tracking
folder, count, name = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
tracking.configure(folder)
(folder / f"ready-{tracking.os.getpid()}").touch()
while len(list(folder.glob("ready-*"))) < count:
    time.sleep(0.005)
print("EXPERIMENT", tracking.ensure_experiment(name, start=folder))
"""
#: one core's worth of threads per training process (the machine has two)
QUIET_THREADS = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1",
                 "TF_CPP_MIN_LOG_LEVEL": "2"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server_env():
    """The environment of scripts/server.sh for a temporary server: its folder under /tmp (pytest's tmp folders
    are private to root, and PostgreSQL runs as user postgres when the tests run as root), free ports."""
    folder = Path(tempfile.mkdtemp(prefix="mtt-server-"))
    folder.chmod(0o755)  # postgres must enter it
    env = {**os.environ, "MTT_SERVER_DIR": str(folder / "server"), "MTT_PG_PORT": str(_free_port()),
           "MTT_SERVER_PORT": str(_free_port()), "MTT_MLFLOW": str(BIN / "mlflow"),
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_RUN_ID",
                 "MTT_PG_PASSWORD", "MTT_SERVER_HOST"):
        env.pop(name, None)
    yield env
    subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, timeout=120)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def server(server_env):
    """The URI of a running server (scripts/server.sh start in the background), with the admin's credentials in
    this process's environment while it runs (MLflow's clients send them, subprocesses inherit them); stopped at
    the end."""
    url = f"http://127.0.0.1:{server_env['MTT_SERVER_PORT']}"
    log = Path(server_env["MTT_SERVER_DIR"]).parent / "server.out"
    with open(log, "w") as out:
        process = subprocess.Popen(["bash", str(SCRIPT), "start"], env=server_env, stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while f"export MLFLOW_TRACKING_URI={url}\n" not in log.read_text():  # printed once the server answers
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"scripts/server.sh start did not serve {url}:\n{log.read_text()}")
            time.sleep(0.5)
        assert _answers(url)
        password = (Path(server_env["MTT_SERVER_DIR"]) / "admin-password").read_text().strip()
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
            patch.setenv("MLFLOW_TRACKING_PASSWORD", password)
            yield url
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=server_env, capture_output=True, timeout=120)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert not _answers(url)


def _epoch_points(client: MlflowClient, run_id: str) -> dict[str, list[int]]:
    """The steps of each per-epoch metric of a run (the run's own points, not its logged model's)."""
    return {name: sorted(m.step for m in client.get_metric_history(run_id, epoch_metric(name)) if m.model_id is None)
            for name in EPOCH_FIGURES}


def test_a_training_run_reads_back_whole_through_the_server(server, server_env, small_prepared, tmp_path,
                                                            monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    params = TrainParams(epochs=2, batch_size=64, width=32, depth=2, registered_model="mtt-team")
    summary = run_train(params, TrainPaths(prepared=small_prepared, reference=small_prepared.parent / "reference",
                                           model=tmp_path / "models"))
    client = MlflowClient(server)
    run_id = summary["run_id"]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    # every param the stage logs
    logged = run.data.params
    expected = {f"train.{k}" for k in params.model_dump() if k != "loss"} | {
        "train.loss", "train.objective", "train.n_features", "train.features"}
    assert set(logged) == expected
    assert logged["train.epochs"] == "2" and logged["train.width"] == "32" and logged["train.n_features"] == "41"
    # every per-epoch metric, once per epoch, and the headline figures
    assert _epoch_points(client, run_id) == {name: [0, 1] for name in EPOCH_FIGURES}
    assert run.data.metrics["best_val_loss"] == pytest.approx(summary["best_val_loss"])
    assert {"final/val_resolution", "final/val_rmse_gev", "wall_time_s"} <= set(run.data.metrics)
    # artifacts went through the server into its artifact store, none into a folder of this client
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.artifact_location.startswith("mlflow-artifacts:/")
    assert {"loss_curve.png", "history.csv", "weights", "preprocessing", "models"} <= {
        a.path for a in client.list_artifacts(run_id)}
    stored = Path(server_env["MTT_SERVER_DIR"]) / "artifacts" / run.info.experiment_id / run_id / "artifacts"
    assert (stored / "history.csv").is_file() and (stored / "preprocessing" / "scaler.npz").is_file()
    assert not (tmp_path / "mlartifacts").exists() and not (tmp_path / "mlflow.db").exists()
    history = pd.read_csv(client.download_artifacts(run_id, "history.csv", str(tmp_path)))
    assert list(history.epoch) == [0, 1]
    # the model, loaded through the server, and the registered version with alias candidate
    val = pd.read_parquet(small_prepared / "val.parquet")
    x = val[FEATURE_SETS["extended"]].to_numpy(np.float32)
    from_run = np.asarray(mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(x)).ravel()
    assert from_run.shape == (len(x),) and np.all(np.isfinite(from_run))
    version = client.get_model_version_by_alias("mtt-team", "candidate")
    assert version.run_id == run_id
    from_registry = np.asarray(mlflow.pyfunc.load_model("models:/mtt-team@candidate").predict(x)).ravel()
    np.testing.assert_allclose(from_registry, from_run, rtol=1e-6)


def _train_at_once(uri: str, prepared: Path, folder: Path) -> list[str]:
    """PROCESSES training processes at once, logging to `uri`; their run ids (each must succeed)."""
    env = {**os.environ, **QUIET_THREADS, "MLFLOW_TRACKING_URI": uri}
    env.pop("MLFLOW_RUN_ID", None)

    def one(index: int) -> str:
        out = folder / f"p{index}"
        out.mkdir()
        result = subprocess.run([sys.executable, "-c", CHILD, str(prepared), str(out), f"concurrent-{index}",
                                 str(EPOCHS)], cwd=out, env=env, capture_output=True, text=True, timeout=280)
        assert result.returncode == 0, f"process {index} failed:\n{result.stdout}\n{result.stderr[-3000:]}"
        assert "database is locked" not in result.stderr, result.stderr[-3000:]
        (line,) = [line for line in result.stdout.splitlines() if line.startswith("RUN_ID ")]
        return line.split()[1]

    with ThreadPoolExecutor(PROCESSES) as pool:
        return list(pool.map(one, range(PROCESSES)))


def _every_metric_arrived(uri: str, run_ids: list[str]) -> None:
    client = MlflowClient(uri)
    assert len(set(run_ids)) == PROCESSES
    for run_id in run_ids:
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED", run_id
        assert _epoch_points(client, run_id) == {name: list(range(EPOCHS)) for name in EPOCH_FIGURES}, run_id
        assert {"best_val_loss", "final/val_resolution", "wall_time_s"} <= set(run.data.metrics)
    versions = client.search_model_versions("name = 'mtt-concurrent'")
    assert sorted(int(v.version) for v in versions) == list(range(1, PROCESSES + 1))
    assert {v.run_id for v in versions} == set(run_ids)


def test_four_training_processes_at_once_lose_nothing_on_the_server(server, small_prepared, tmp_path):
    run_ids = _train_at_once(server, small_prepared, tmp_path)
    _every_metric_arrived(server, run_ids)


def test_four_training_processes_at_once_lose_nothing_on_sqlite(small_prepared, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run_ids = _train_at_once(uri, small_prepared, tmp_path)
    _every_metric_arrived(uri, run_ids)


@pytest.mark.parametrize("store", ["sqlite", "server"])
def test_processes_creating_the_experiment_at_once_all_get_it(store, request, tmp_path):
    uri = request.getfixturevalue("server") if store == "server" else f"sqlite:///{tmp_path}/mlflow.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    processes = [subprocess.Popen([sys.executable, "-c", RACE, str(tmp_path), str(PROCESSES), f"race-{store}"],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(PROCESSES)]
    answers = [process.communicate(timeout=120) for process in processes]
    assert all(process.returncode == 0 for process in processes), [err[-2000:] for _, err in answers]
    ids = {line.split()[1] for out, _ in answers for line in out.splitlines() if line.startswith("EXPERIMENT ")}
    assert ids == {MlflowClient(uri).get_experiment_by_name(f"race-{store}").experiment_id}


def _params_file(folder: Path) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def test_a_server_that_is_down_stops_train_in_one_line_before_any_work(small_prepared, tmp_path):
    uri = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    env.pop("MLFLOW_RUN_ID", None)
    started = time.monotonic()
    result = subprocess.run(
        [str(BIN / "mtt"), "train", "--params", str(_params_file(tmp_path)), "--prepared", str(small_prepared),
         "--reference", str(small_prepared.parent / "reference"), "--model", str(tmp_path / "models"),
         "--metrics", str(tmp_path / "metrics.json"), "--history", "", "--checkpoints", "", "--validation", "",
         "--docs", ""], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"mtt train: error: no MLflow tracking server answers at {uri} (") and line.endswith(
        "): start it with `make server` or unset MLFLOW_TRACKING_URI"), line
    assert result.stdout == ""  # no training output
    assert not (tmp_path / "models").exists() and not (tmp_path / "metrics.json").exists()
    assert elapsed < 30, f"{elapsed:.0f} s"


def test_a_wrong_postgres_password_stops_the_server_script_in_one_line(server, server_env):
    """Last: it stops the module's server to start the script again with another password."""
    subprocess.run(["bash", str(SCRIPT), "stop"], env=server_env, check=True, capture_output=True, timeout=120)
    assert not _answers(server)
    started = time.monotonic()
    result = subprocess.run(["bash", str(SCRIPT), "start"], env={**server_env, "MTT_PG_PASSWORD": "not-the-one"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "refuses user mlflow" in line and "password authentication failed" in line, line
    assert time.monotonic() - started < 60
    assert not _answers(server)
    # the script stopped the PostgreSQL it had started
    assert not (Path(server_env["MTT_SERVER_DIR"]) / "pgdata" / "postmaster.pid").exists()
