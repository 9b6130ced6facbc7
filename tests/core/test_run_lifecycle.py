"""Run lifecycle: a run this process made ends with the right status, a SIGTERM waits, a dead owner is noticed."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest

from mtt.core.run_lifecycle import SigtermDeferral, ended, mark_dead_runs, process_tags


def test_ended_finishes_fails_or_kills_the_run(tmp_path):
    """Runs made with a real client on a local store end FINISHED, FAILED and KILLED."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.create_experiment("ended")
    runs = [client.create_run(experiment).info.run_id for _ in range(3)]
    with ended(client, runs[0]):
        pass
    with pytest.raises(ValueError), ended(client, runs[1]):
        raise ValueError
    with pytest.raises(KeyboardInterrupt), ended(client, runs[2]):
        raise KeyboardInterrupt
    assert [client.get_run(r).info.status for r in runs] == ["FINISHED", "FAILED", "KILLED"]


def test_a_sigterm_waits_for_the_release():
    caught = []
    previous = signal.signal(signal.SIGTERM, lambda *_: caught.append("SIGTERM"))
    try:
        with SigtermDeferral():
            os.kill(os.getpid(), signal.SIGTERM)
            assert caught == []
        assert caught == ["SIGTERM"]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_run_whose_process_is_gone_is_marked_killed(store):
    experiment = store.create_experiment("lifecycle")
    alive = store.create_run(experiment, tags=process_tags()).info.run_id
    reused = store.create_run(experiment, tags={**process_tags(), "mtt.process_start": "0"}).info.run_id  # pid reused
    untagged = store.create_run(experiment).info.run_id
    assert mark_dead_runs(experiment) == [reused]
    assert store.get_run(reused).info.status == "KILLED" and store.get_run(alive).info.status == "RUNNING"
    assert mark_dead_runs(experiment, untagged_hours=0) == [untagged]  # another tool's run, old enough
    assert store.get_run(alive).info.status == "RUNNING"


def test_the_active_run_ends_failed_on_an_error_and_killed_on_ctrl_c(tmp_path, monkeypatch):
    """A real local store: an error inside the block leaves the run FAILED, Ctrl-C KILLED, a clean exit FINISHED."""
    import mlflow

    from mtt.core.run_lifecycle import active_run_ends_on_failure

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    statuses = []
    for raised in (ValueError, KeyboardInterrupt, None):
        with pytest.raises(raised) if raised else contextlib.nullcontext(), \
                mlflow.start_run() as run, active_run_ends_on_failure():
            if raised:
                raise raised
        statuses.append(mlflow.get_run(run.info.run_id).info.status)
    assert statuses == ["FAILED", "KILLED", "FINISHED"]
