"""Processes and runs: no run left RUNNING after one or two SIGTERMs (train and evaluate), `mtt runs --cleanup`
finds every dead run, worker processes die with their stage, predict's scratch folders of a killed run are
removed, a model folder is complete or absent whenever train is stopped, and a tracking URI whose folder does
not exist is refused before any work.

The children stop at a point the test chooses (see CHILD) and write a marker file; the test then sends the
signal."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import psutil
import pytest
from mlflow.tracking import MlflowClient
from reliability.conftest import rewrite, temporary_outputs

from mtt.cli import main

REPO = Path(__file__).resolve().parents[2]

#: `mtt` in a child that stops at the point argv[2] names, having written the marker file argv[1]/paused:
#: for ever (the test signals it), or, at `commit`, for 2 s. At `cleanup` (where a run is ended KILLED after
#: the first SIGTERM) it writes argv[1]/cleanup and waits 2 s, so that a second SIGTERM lands in the cleanup.
CHILD = """
import sys, time, pathlib
markers = pathlib.Path(sys.argv[1])
point = sys.argv[2]

def pause(name="paused", seconds=1e9):
    (markers / name).write_text(name)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.05)

import mlflow
from mlflow.tracking import MlflowClient

end_run, set_terminated = mlflow.end_run, MlflowClient.set_terminated
def end_run_slowly(status="FINISHED"):
    if status != "FINISHED":
        pause("cleanup", 2)
    end_run(status)
def set_terminated_slowly(self, run_id, status=None, end_time=None):
    if status not in (None, "FINISHED"):
        pause("cleanup", 2)
    set_terminated(self, run_id, status, end_time)
mlflow.end_run, MlflowClient.set_terminated = end_run_slowly, set_terminated_slowly

if point == "epoch":
    import keras
    from mtt.stages.train.fit import Trainer

    class Pause(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                pause()

    fit = Trainer.fit
    Trainer.fit = lambda self, logger, extra: fit(self, logger, [*extra, Pause()])
elif point == "model_artifact":  # train logs the model folder to its run
    log_artifacts = mlflow.log_artifacts
    def log_then_pause(local_dir, artifact_path=None, *args, **kwargs):
        if artifact_path == "models":
            pause()
        return log_artifacts(local_dir, artifact_path, *args, **kwargs)
    mlflow.log_artifacts = log_then_pause
elif point == "commit":  # train writes its headline figures
    from mtt.stages.train import outputs

    write_json = outputs.write_json
    def slow_write_json(*args, **kwargs):
        pause(seconds=2)
        return write_json(*args, **kwargs)
    outputs.write_json = slow_write_json
elif point == "evaluate_log":  # evaluate logs its outputs to a run
    log_artifacts = MlflowClient.log_artifacts
    def pause_then_log(self, *args, **kwargs):
        pause()
        return log_artifacts(self, *args, **kwargs)
    MlflowClient.log_artifacts = pause_then_log
elif point == "predict":  # predict selects events
    from mtt.stages.predict import stage

    def paused(*args, **kwargs):
        pause()
    stage.predict = paused
from mtt.cli import main
sys.exit(main(sys.argv[3:]))
"""


def start(point: str, args: list[str], markers: Path, env: dict[str, str]) -> subprocess.Popen:
    """The child `mtt <args>`, once it has reached its pause point."""
    markers.mkdir(exist_ok=True)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(markers), point, *args], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait_for(markers / "paused", child, 240):
        child.kill()
        pytest.fail(f"the child did not reach its pause point:\n{child.communicate()[1][-3000:]}")
    return child


def wait_for(marker: Path, child: subprocess.Popen, seconds: float) -> bool:
    """Whether `marker` appeared within `seconds` while the child ran."""
    deadline = time.monotonic() + seconds
    while not marker.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def terminate(child: subprocess.Popen, markers: Path, twice: bool) -> str:
    """SIGTERM, and with `twice` a second one while the child ends its run; the child's stderr."""
    child.send_signal(signal.SIGTERM)
    if twice and wait_for(markers / "cleanup", child, 30):
        child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    return err


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}


def _train_args(small_prepared: Path, tmp_path: Path) -> list[str]:
    return ["train", "--params", str(REPO / "params.yaml"), "--prepared", str(small_prepared),
            "--reference", str(small_prepared.parent / "reference"), "--model", str(tmp_path / "models"),
            "--metrics", str(tmp_path / "metrics.json"), "--history", str(tmp_path / "history.csv"),
            "--checkpoints", str(tmp_path / "checkpoints"), "--validation", "", "--docs", "",
            "-S", "epochs=3", "-S", "width=8", "-S", "depth=1"]


def _runs(uri: str) -> tuple[MlflowClient, list]:
    client = MlflowClient(tracking_uri=uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client, client.search_runs(experiments)


# --- no run stays RUNNING after SIGTERM, once or twice -------------------------------------------------------------


@pytest.mark.slow
def test_two_sigterms_in_a_row_still_end_the_training_run_killed(small_prepared, tmp_path, env):
    markers = tmp_path / "markers"
    child = start("epoch", _train_args(small_prepared, tmp_path), markers, env)
    err = terminate(child, markers, twice=True)
    assert (markers / "cleanup").exists(), err[-2000:]  # the second SIGTERM came while the run was being ended
    assert child.returncode == 143, err[-2000:]
    assert "mtt train: terminated (SIGTERM)" in err and "Traceback" not in err
    assert "mtt: SIGTERM again: still ending the run" in err
    _, (run,) = _runs(env["MLFLOW_TRACKING_URI"])
    assert run.info.status == "KILLED"
    assert not (tmp_path / "models").exists() and temporary_outputs(tmp_path) == []


@pytest.fixture
def other_data(small_prepared, tiny_trained, tmp_path):
    """(model folder, prepared folder, store URI): the tiny model's store copied (its artifacts now under
    tmp_path), and a test split it was not trained next to, so evaluate logs into a run of its own."""
    root, uri, _ = tiny_trained
    database = tmp_path / "mlflow.db"
    database.write_bytes(Path(uri.removeprefix("sqlite:///")).read_bytes())
    database.with_suffix(".copied").write_text(str(int(time.time() * 1000)))  # runs from here on are this test's
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE experiments SET artifact_location = ?", ((tmp_path / "mlartifacts").as_uri(),))
    connection.close()
    other = rewrite(small_prepared, tmp_path / "other" / "prepared", lambda f: f.iloc[: len(f) // 2],
                    splits=("test",))
    return root / "models", other, f"sqlite:///{database}"


def _evaluate_args(model: Path, prepared: Path, out: Path) -> list[str]:
    return ["evaluate", "--params", str(REPO / "params.yaml"), "--prepared", str(prepared), "--model", str(model),
            "--out", str(out), "--history", "", "-S", "ellipse=false", "-S", "unfold=false"]


def _evaluation_runs(uri: str) -> list:
    """The evaluation runs this test made (the copied store may hold earlier tests' evaluations of the model)."""
    _, runs = _runs(uri)
    since = int(Path(uri.removeprefix("sqlite:///")).with_suffix(".copied").read_text())
    return [run for run in runs if run.data.tags.get("eval.model_run_id") and run.info.start_time >= since]


@pytest.mark.slow
@pytest.mark.parametrize("twice", [False, True], ids=["one SIGTERM", "two SIGTERMs"])
def test_sigterm_ends_evaluates_own_run_killed(other_data, tmp_path, twice):
    model, prepared, uri = other_data
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    markers = tmp_path / "markers"
    child = start("evaluate_log", _evaluate_args(model, prepared, tmp_path / "eval"), markers, env)
    err = terminate(child, markers, twice)
    assert child.returncode == 143, err[-2000:]
    assert "mtt evaluate: terminated (SIGTERM)" in err and "Traceback" not in err
    (run,) = _evaluation_runs(uri)
    assert run.info.status == "KILLED"
    assert not twice or (markers / "cleanup").exists()


# --- `mtt runs --cleanup` finds every dead run -----------------------------------------------------------------


@pytest.mark.slow
def test_cleanup_finds_the_run_of_a_sigkilled_evaluate(other_data, tmp_path, monkeypatch, capsys):
    model, prepared, uri = other_data
    child = start("evaluate_log", _evaluate_args(model, prepared, tmp_path / "eval"), tmp_path / "markers",
                  {**os.environ, "MLFLOW_TRACKING_URI": uri})
    child.kill()
    child.communicate(timeout=60)
    (run,) = _evaluation_runs(uri)
    assert run.info.status == "RUNNING"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert main(["runs", "--cleanup"]) == 0
    assert MlflowClient(tracking_uri=uri).get_run(run.info.run_id).info.status == "KILLED"
    assert f"run {run.info.run_id}" in capsys.readouterr().out


def test_cleanup_ends_old_untagged_runs_and_says_what_it_left(store, capsys):
    experiment = store.create_experiment("mtt")
    hours_ago = lambda hours: int((time.time() - 3600 * hours) * 1000)  # noqa: E731
    old = store.create_run(experiment, start_time=hours_ago(30), run_name="old").info.run_id
    young = store.create_run(experiment, start_time=hours_ago(1), run_name="young").info.run_id
    assert main(["runs", "--cleanup"]) == 0
    out = capsys.readouterr().out
    assert store.get_run(old).info.status == "KILLED" and store.get_run(young).info.status == "RUNNING"
    assert f"run {old} (old)" in out and "1 RUNNING run(s) without mtt's process tags" in out
    assert main(["runs", "--cleanup", "--older-than", "0"]) == 0
    assert store.get_run(young).info.status == "KILLED"


# --- worker processes die with their parent ------------------------------------------------------------------------


@pytest.mark.slow
def test_simulate_workers_die_with_a_sigkilled_parent(tmp_path):
    args = [sys.executable, "-m", "mtt", "simulate", "--params", str(REPO / "params.yaml"), "--out",
            str(tmp_path / "raw"), "-S", "n_events=200000", "-S", "events_per_chunk=100000", "-S", "workers=2",
            "-S", "progress=false", "-S", "level=parton"]
    child = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parent = psutil.Process(child.pid)
    workers: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2 and time.monotonic() < deadline and child.poll() is None:
            workers = [p for p in parent.children(recursive=True) if p.cmdline()[:3] == args[:3]]
            time.sleep(0.1)
        assert len(workers) == 2, child.stderr.read().decode()[-2000:]
        time.sleep(1.0)  # the workers are generating events
        child.kill()
        child.wait(timeout=30)
        _, alive = psutil.wait_procs(workers, timeout=5)
        assert alive == [], f"workers {[p.pid for p in alive]} outlived their parent"
    finally:
        for process in [*workers, parent]:
            with suppress(psutil.NoSuchProcess):
                process.kill()
        child.stderr.close()


# --- predict removes the scratch folders of a killed run ----------------------------------------------------------


@pytest.mark.slow
def test_predict_removes_the_scratch_folders_of_a_killed_run(small_prepared, tiny_trained, tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    args = ["predict", "--params", str(REPO / "params.yaml"), "--model", str(tiny_trained[0] / "models"),
            "--input", str(small_prepared.parent / "raw"), "--output", str(tmp_path / "p.parquet"),
            "-S", "workers=1"]
    child = start("predict", args, tmp_path / "markers", env)
    child.kill()
    child.communicate(timeout=60)
    left = [path for path in scratch.iterdir() if "mtt-predict" in path.name]
    assert left  # SIGKILL: nothing could clean up
    result = subprocess.run([sys.executable, "-m", "mtt", *args], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not [path for path in left if path.exists()], result.stdout[-2000:]
    assert (tmp_path / "p.parquet").is_file()


# --- a model folder is complete or absent --------------------------------------------------------------------------


def _consistent(tmp_path: Path, uri: str) -> str:
    """The model folder holds nothing, or a model whose run FINISHED with its metrics and history, next to the
    stage's other outputs; no temporary leftovers. Which of the two it was."""
    client, (run,) = _runs(uri)
    assert temporary_outputs(tmp_path) == []
    if not (tmp_path / "models").exists():
        assert run.info.status == "KILLED" and not (tmp_path / "metrics.json").exists()
        return "absent"
    meta = json.loads((tmp_path / "models" / "model.json").read_text())
    named = client.get_run(meta["mlflow_run_id"])
    assert named.info.status == "FINISHED", f"model.json names a {named.info.status} run"
    assert "final/val_resolution" in named.data.metrics
    assert "history.csv" in [a.path for a in client.list_artifacts(named.info.run_id)]
    assert json.loads((tmp_path / "metrics.json").read_text())["run_id"] == named.info.run_id
    assert (tmp_path / "history.csv").is_file()
    return "complete"


@pytest.mark.slow
@pytest.mark.parametrize("point", ["model_artifact", "commit"])
def test_sigterm_leaves_the_model_folder_complete_or_absent(small_prepared, tmp_path, env, point):
    child = start(point, _train_args(small_prepared, tmp_path), tmp_path / "markers", env)
    err = terminate(child, tmp_path / "markers", twice=False)
    assert child.returncode == 143, err[-2000:]
    assert "Traceback" not in err
    assert _consistent(tmp_path, env["MLFLOW_TRACKING_URI"]) == ("absent" if point == "model_artifact"
                                                                 else "complete")


# --- a tracking URI whose folder does not exist --------------------------------------------------------------------


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("form", ["sqlite", "file", "path"])
def test_a_tracking_uri_in_a_missing_folder_is_refused(tmp_path, monkeypatch, capsys, form):
    missing = tmp_path / "no" / "such"
    uri = {"sqlite": f"sqlite:///{missing}/mlflow.db", "file": (missing / "mlruns").as_uri(),
           "path": str(missing / "mlruns")}[form]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    assert main(["runs", "--cleanup"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and uri in err and f"{missing} does not exist" in err
    assert _tree(tmp_path) == before


def test_train_refuses_a_tracking_uri_in_a_missing_folder_before_any_work(small_prepared, tmp_path, monkeypatch,
                                                                         capsys):
    uri = f"sqlite:///{tmp_path}/no/such/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    assert main(_train_args(small_prepared, tmp_path)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and uri in err and time.monotonic() - started < 5
    assert _tree(tmp_path) == []


@pytest.mark.slow
def test_the_projects_own_store_is_still_created_on_first_use(tmp_path, monkeypatch):
    for marker in ("dvc.yaml", "MLproject"):
        (tmp_path / marker).write_text("")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["runs", "--cleanup"]) == 0
    assert (tmp_path / "mlflow.db").is_file()
