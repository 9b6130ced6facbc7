"""Kills at a point the test controls: the child process stops at a marked place (after epoch 1 of a
training, after the first block prepare wrote), says so in a marker file, and the test then sends the signal.
Afterwards: no run left RUNNING, no temporary output left behind, no partial output in place."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from reliability.conftest import temporary_outputs

from mtt.cli import main

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

#: run `mtt` in a child that pauses, forever, at a marked point: after epoch 1 (train) or after the first
#: block written (prepare), having written the marker file argv[1]
CHILD = """
import sys, time, pathlib
marker = pathlib.Path(sys.argv[1])

def pause():
    marker.write_text("paused")
    while True:
        time.sleep(0.05)

if sys.argv[2] == "train":
    import keras
    from mtt.stages.train.fit import Trainer

    class Pause(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                pause()

    fit = Trainer.fit
    Trainer.fit = lambda self, logger, extra: fit(self, logger, [*extra, Pause()])
else:
    from mtt.stages.prepare import output

    write = output.SplitWriters.write
    def write_then_pause(self, parts):
        write(self, parts)
        pause()
    output.SplitWriters.write = write_then_pause
from mtt.cli import main
sys.exit(main(sys.argv[2:]))
"""


def start(args: list[str], marker: Path, env: dict[str, str]) -> subprocess.Popen:
    """The child, once it has reached its pause point."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(marker), *args], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not marker.exists():
        if child.poll() is not None:
            pytest.fail(f"the child ended before its pause point:\n{child.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            child.kill()
            pytest.fail("the child did not reach its pause point in 240 s")
        time.sleep(0.1)
    return child


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}


def _train_args(small_prepared, tmp_path):
    return ["train", "--params", str(REPO / "params.yaml"), "--prepared", str(small_prepared),
            "--reference", str(small_prepared.parent / "reference"), "--model", str(tmp_path / "models"),
            "--metrics", str(tmp_path / "metrics.json"), "--history", str(tmp_path / "history.csv"),
            "--checkpoints", str(tmp_path / "checkpoints"), "--validation", "", "--docs", "",
            "-S", "epochs=4", "-S", "width=8", "-S", "depth=1"]


def _only_run(uri):
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("mtt").experiment_id])
    return client, run


def test_sigterm_ends_the_run_killed_and_keeps_the_resume_state(small_prepared, tmp_path, env):
    child = start(_train_args(small_prepared, tmp_path), tmp_path / "marker", env)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 143, err[-2000:]
    assert "mtt train: terminated (SIGTERM)" in err
    _, run = _only_run(env["MLFLOW_TRACKING_URI"])
    assert run.info.status == "KILLED"
    assert (tmp_path / "checkpoints" / "state.npz").is_file()  # train.resume continues from epoch 2
    assert not (tmp_path / "models").exists() and not (tmp_path / "metrics.json").exists()
    assert temporary_outputs(tmp_path) == []


def test_a_run_killed_without_a_word_is_marked_killed_later(small_prepared, tmp_path, env, monkeypatch, capsys):
    child = start(_train_args(small_prepared, tmp_path), tmp_path / "marker", env)
    child.kill()  # SIGKILL: nothing in the process can react
    child.communicate(timeout=60)
    client, run = _only_run(env["MLFLOW_TRACKING_URI"])
    assert run.info.status == "RUNNING"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env["MLFLOW_TRACKING_URI"])
    assert main(["runs", "--cleanup", "--experiment", "mtt"]) == 0  # what the next `mtt train` does by itself
    assert client.get_run(run.info.run_id).info.status == "KILLED"
    out = capsys.readouterr().out
    assert f"run {run.info.run_id}" in out and "1 run(s) of dead processes marked KILLED" in out


def test_a_killed_prepare_leaves_no_partial_output_and_its_leftovers_are_removed(small_sim, tmp_path, env):
    raw, _, _ = small_sim
    args = ["prepare", "--params", str(REPO / "params.yaml"), "--input", str(raw), "--out", str(tmp_path / "prepared"),
            "--metrics", str(tmp_path / "cutflow.json"), "-S", "workers=1", "-S", "step_size=200"]
    child = start(args, tmp_path / "marker", env)
    child.kill()
    child.communicate(timeout=60)
    assert not (tmp_path / "prepared").exists()
    (leftover,) = temporary_outputs(tmp_path)  # SIGKILL: nothing could clean up
    result = subprocess.run([sys.executable, "-m", "mtt", *args], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"removed {leftover}: a temporary output of process {child.pid}, which no longer runs" in result.stdout
    assert temporary_outputs(tmp_path) == [] and (tmp_path / "prepared" / "train.parquet").is_file()


def test_sigterm_during_prepare_cleans_up(small_sim, tmp_path, env):
    raw, _, _ = small_sim
    args = ["prepare", "--params", str(REPO / "params.yaml"), "--input", str(raw), "--out", str(tmp_path / "prepared"),
            "--metrics", str(tmp_path / "cutflow.json"), "-S", "workers=1", "-S", "step_size=200"]
    child = start(args, tmp_path / "marker", env)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 143, err[-2000:]
    assert not (tmp_path / "prepared").exists() and temporary_outputs(tmp_path) == []
