"""simulate on Dask (`simulate.executor: dask`): the same events as the local pool, a dead worker, a bad scheduler.

Every LocalCluster here is started by the stage (or the test) and closed before the test ends; the
`no_leaked_processes` fixture checks that no worker process outlives its test.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import awkward as ak
import dask
import pytest
from conftest import SMALL, read_events
from dask_workers import free_port, kill_script, no_leaked_processes  # noqa: F401 (no_leaked_processes: an autouse fixture)

from mtt.cli import main as cli_main
from mtt.core.io import OUTPUT_RECORD, OutputError
from mtt.core.workers import DaskParams, ExecutorError
from mtt.stages.simulate.detector import DetectorCard
from mtt.stages.simulate.generator import GeneratorConfig
from mtt.stages.simulate.stage import MANIFEST, ChunkJob, run_simulation, simulate_chunk_on_worker
from mtt.tools.params import load_params

#: 3 chunks of 100 events on 2 workers: one worker makes two chunks
TINY = SMALL.model_copy(update={"n_events": 300, "events_per_chunk": 100, "workers": 2})


def test_dask_gives_the_same_events_as_the_local_pool(tmp_path):
    local = run_simulation(TINY, tmp_path / "local")
    on_dask = run_simulation(TINY.model_copy(update={"executor": "dask"}), tmp_path / "dask")
    assert local["executor"] == "local" and on_dask["executor"].startswith("dask at tcp://127.0.0.1:")
    assert on_dask["workers"] == 2 and on_dask["n_events"] == local["n_events"] == 300
    names = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "dask").iterdir())
    assert names == [OUTPUT_RECORD, "events_00000.root", "events_00001.root", "events_00002.root", MANIFEST]
    # every file is byte-identical: the record leaves out where the chunks ran, the ROOT files' UUIDs and dates
    # follow the seed and the chunk
    for name in names:
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "dask" / name).read_bytes(), name
    assert "executor" not in json.loads((tmp_path / "dask" / MANIFEST).read_text())["params"]
    a, b = read_events(tmp_path / "local"), read_events(tmp_path / "dask")
    assert a.fields == b.fields and len(a) == 300
    for field in a.fields:
        assert ak.array_equal(a[field], b[field], equal_nan=True), field
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dask", "local"]  # no temporary folders left


@pytest.mark.slow  # a LocalCluster whose worker dies or a second cluster: ~2.5 s
def test_a_worker_that_dies_fails_the_stage_naming_its_chunk(tmp_path):
    out = tmp_path / "raw"
    run_simulation(TINY.model_copy(update={"n_events": 20, "events_per_chunk": 10}), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    # the worker that starts chunk 1 dies; chunks 0 and 2 may be done or running on the other worker by then
    with dask.config.set({"distributed.worker.preload": [kill_script("simulate-1-")]}), \
            pytest.raises(ExecutorError) as failure:
        run_simulation(TINY.model_copy(update={"executor": "dask"}), out)
    message = str(failure.value)
    assert message.startswith("simulate: chunk 1 failed: worker died (tcp://127.0.0.1:") and "\n" not in message
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the previous output, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # the temporary folder is gone


def test_a_worker_that_cannot_see_the_output_folder_says_so(tmp_path):
    job = ChunkJob(2, 0, 10, 1, GeneratorConfig(), DetectorCard(), str(tmp_path / "elsewhere"))
    with pytest.raises(OutputError, match=rf"simulate: chunk 2: the Dask worker on {socket.gethostname()} cannot "
                                          r"see the output folder .*elsewhere \(workers must share the filesystem"):
        simulate_chunk_on_worker(job)


def test_an_unreachable_scheduler_stops_before_any_work(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    params = TINY.model_copy(update={"executor": "dask", "dask": DaskParams(scheduler=address, connect_timeout=1.0)})
    start = time.perf_counter()
    with pytest.raises(ExecutorError) as failure:
        run_simulation(params, tmp_path / "raw")
    assert time.perf_counter() - start < 10
    message = str(failure.value)
    assert message.startswith(f"simulate.dask.scheduler: no Dask scheduler answered at {address} within 1 s (")
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []  # no output, no temporary folder


def test_the_command_line_reports_an_unreachable_scheduler_in_one_line(tmp_path, capsys):
    params_file = tmp_path / "params.yaml"
    params_file.write_text("simulate:\n  n_events: 20\n  progress: false\n")
    address = f"tcp://127.0.0.1:{free_port()}"
    code = cli_main(["simulate", "--params", str(params_file), "--out", str(tmp_path / "raw"), "-S", "executor=dask",
                     "-S", f"dask.scheduler={address}", "-S", "dask.connect_timeout=1"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith(f"mtt simulate: error: simulate.dask.scheduler: no Dask scheduler answered at {address}")
    assert "\n" not in err
    assert not (tmp_path / "raw").exists()


def test_scheduler_addresses_that_are_accepted(tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text("simulate:\n  n_events: 10\n")
    for address in ("tcp://node12.cluster:8786", "tls://10.0.0.5:8786", "node12:8786", "tcp://[::1]:8786", ""):
        assert load_params(params_file, "simulate", {"dask": {"scheduler": address}}).dask.scheduler == address


def test_local_runs_do_not_import_dask(tmp_path):
    code = ("import sys; from mtt.stages.simulate.params import SimulateParams; "
            "from mtt.stages.simulate.stage import run_simulation; "
            "import mtt.stages.prepare; "
            f"run_simulation(SimulateParams(n_events=20, workers=1, progress=False), {str(tmp_path / 'raw')!r}); "
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')); "
            "print(loaded); sys.exit(1 if loaded else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
