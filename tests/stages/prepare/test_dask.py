"""prepare on Dask (`prepare.executor: dask`): the same Parquet as the local pool, on a LocalCluster the stage starts
or on a running scheduler given by address; a dead worker fails the stage naming the read step."""

from __future__ import annotations

import socket

import dask
import pyarrow.parquet as pq
import pytest
from dask_workers import kill_script, no_leaked_processes  # noqa: F401 (no_leaked_processes: an autouse fixture)
from distributed import Client, LocalCluster
from root_events import good_emu, write_events

from mtt.core.errors import PrepareError
from mtt.core.events.inputs import Step
from mtt.core.events.params import PrepareParams
from mtt.core.workers import DaskParams, ExecutorError
from mtt.stages.prepare.stage import StepJob, process_step_on_worker, run_prepare

#: 3 read steps per 250-event file, 2 workers
PARAMS = PrepareParams(workers=2, step_size=100)
SPLITS = ("train", "val", "test")


def _inputs(folder, shift: float = 0.0) -> list:
    """Two files of e mu events with different lepton momenta (`shift` moves every electron pT)."""
    events = [good_emu(electrons=[(30.0 + shift + i % 50, 0.5, 0.01 * i, 1)]) for i in range(500)]
    return [write_events(folder / "a.root", events[:250]), write_events(folder / "b.root", events[250:],
                                                                        first_event=250)]


def _same_parquet(a, b) -> None:
    """The three splits are the same files, byte for byte (rows, columns, and the metadata with its sources)."""
    for name in SPLITS:
        assert (a / f"{name}.parquet").read_bytes() == (b / f"{name}.parquet").read_bytes(), name
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())


@pytest.mark.slow  # a LocalCluster; simulate's Dask test is the fast case
def test_dask_gives_the_same_parquet_as_the_local_pool(tmp_path):
    inputs = _inputs(tmp_path)
    local = run_prepare(PARAMS, inputs, tmp_path / "local", tmp_path / "local.json")
    on_dask = run_prepare(PARAMS.model_copy(update={"executor": "dask"}), inputs, tmp_path / "dask",
                          tmp_path / "dask.json")
    assert local["executor"] == "local" and on_dask["executor"].startswith("dask at tcp://127.0.0.1:")
    _same_parquet(tmp_path / "local", tmp_path / "dask")
    assert (tmp_path / "local.json").read_bytes() == (tmp_path / "dask.json").read_bytes()  # the cutflow
    assert pq.read_table(tmp_path / "dask" / "train.parquet").num_rows == local["splits"]["train"] > 0


@pytest.mark.slow  # a LocalCluster whose worker dies or a second cluster: ~2.5 s
def test_a_running_scheduler_given_by_address(tmp_path):
    """Against a cluster that outlives the stage: its workers keep no file open between runs, so replaced inputs
    (a new simulation at the same paths) are read anew; the stage leaves the cluster running."""
    _inputs(tmp_path)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      scheduler_kwargs={"dashboard_address": ":0"}) as cluster:
        params = PARAMS.model_copy(update={"executor": "dask",
                                           "dask": DaskParams(scheduler=cluster.scheduler_address)})
        first = run_prepare(params, [tmp_path / "a.root", tmp_path / "b.root"], tmp_path / "first")
        assert first["executor"] == f"dask at {cluster.scheduler_address}"
        inputs = _inputs(tmp_path, shift=7.0)  # written under a temporary name and renamed over the old files
        run_prepare(params, inputs, tmp_path / "second")
        with Client(cluster, set_as_default=False) as client:
            assert len(client.nthreads()) == 2  # still there, with both workers
    run_prepare(PARAMS, inputs, tmp_path / "local")
    _same_parquet(tmp_path / "local", tmp_path / "second")
    assert (tmp_path / "first" / "train.parquet").read_bytes() != (tmp_path / "second" / "train.parquet").read_bytes()


def test_a_worker_that_cannot_see_an_input_says_so(tmp_path):
    job = StepJob(Step(tmp_path / "elsewhere.root", 0, 100), PARAMS, True, ("m_ll",))
    with pytest.raises(PrepareError, match=rf"elsewhere.root: the Dask worker on {socket.gethostname()} cannot see "
                                           r"this input file \(workers must share the filesystem"):
        process_step_on_worker(job)


@pytest.mark.slow  # a LocalCluster whose worker dies or a second cluster: ~2.5 s
def test_a_worker_that_dies_fails_the_stage_naming_its_step(tmp_path):
    inputs = _inputs(tmp_path)
    out = tmp_path / "out"
    run_prepare(PARAMS, inputs, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with dask.config.set({"distributed.worker.preload": [kill_script("prepare-4-")]}), \
            pytest.raises(ExecutorError) as failure:
        run_prepare(PARAMS.model_copy(update={"executor": "dask"}), inputs, out)
    message = str(failure.value)
    assert message.startswith("prepare: read step 4 (b.root, entries 100-200) failed: worker died (tcp://127.0.0.1:")
    assert "\n" not in message
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.root", "b.root", "out"]  # no temporary folder
