"""Every script in benchmarks/ runs at a tiny size and prints its figure next to its reference, so none can rot.

Each runs as a subprocess with this interpreter (as a person runs it), its cached inputs in a temporary folder
(MTT_BENCH_WORK), its MLflow runs in a temporary store. The sizes are far too small for the figures to mean
anything: only that the script completes and prints its ratio line is checked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mtt.core.events.params import PrepareParams
from mtt.stages.prepare.stage import run_prepare
from mtt.stages.simulate.params import SimulateParams, ZprimeParams
from mtt.stages.simulate.stage import run_simulation

REPO = Path(__file__).resolve().parents[2]
NUMBER = r"[\d.]+"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The benchmarks' cache for this module (shared: bench_train reuses bench_validate's prepared events)."""
    return tmp_path_factory.mktemp("bench_work")


def run_script(script: str, *args: str, work: Path, cwd: Path = REPO) -> str:
    """Run benchmarks/<script>.py; its stdout (the test fails with its stderr if it fails)."""
    env = {**os.environ, "MTT_BENCH_WORK": str(work), "MLFLOW_TRACKING_URI": f"sqlite:///{work}/mlflow.db",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / f"{script}.py"), *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def test_bench_simulate(work):
    out = run_script("bench_simulate", "--events", "40", "--repeat", "1", "--dask-chunks", "2", work=work)
    assert re.search(rf"1 worker  \(events/s\)\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}", out), out
    assert re.search(rf"Dask / pool: {NUMBER} \(target >= 0.90\)", out), out


def test_bench_prepare(work):
    out = run_script("bench_prepare", "--events", "1000", "--chunk", "500", "--repeat", "1", work=work)
    for label in ("1x 1000", "4x 4000"):  # four seeds: 4000 distinct events, which prepare accepts
        assert re.search(rf"{label}\s+\d+/s\s+\d+/s\s+{NUMBER}", out), out
    assert re.search(rf"peak RSS \(main \+ worker\), 4x / 1x: {NUMBER}", out), out


def test_bench_validate_and_train(work):
    out = run_script("bench_validate", "--rows", "3000", "--source-events", "1500", "--reference-rows", "1000",
                     work=work)
    assert re.search(rf"all checks\s+{NUMBER} s\s+\({NUMBER}x the read\)", out), out
    out = run_script("bench_train", "--source-events", "1500", "--epochs", "1", "--repeat", "1", "--batch-size",
                     "64", "-S", "width=8", "-S", "depth=1", work=work)
    assert re.search(rf"stage, numpy input\s+{NUMBER} samples/s\s+{NUMBER} s/epoch\s+ratio {NUMBER}", out), out


def test_bench_evaluate(work):
    """Timed with the solver itself as `--old`: the same bits, said so."""
    out = run_script("bench_evaluate", "--events", "1000", "--loop-events", "10", "--repeat", "1", "--old",
                     str(REPO / "src/mtt/core/reco/ellipse.py"), work=work)
    assert "largest relative m_tt difference 0.0e+00; every answer bit-identical: True" in out, out
    assert re.search(rf"vectorised reconstruct_mtt:\s+{NUMBER} events/s \({NUMBER} events\); first call in this "
                     rf"process {NUMBER} s", out), out
    assert re.search(rf"speed-up:\s+{NUMBER}x", out) and "same m_tt: True" in out, out


def test_bench_predict(work, tiny_trained, small_prepared):
    root = small_prepared.parent
    out = run_script("bench_predict", "--model", str(tiny_trained[0] / "models"), "--input", str(root / "raw"),
                     "--prepared", str(small_prepared), "--reference", str(root / "reference"), "--workers", "1",
                     "--repeat", "1", work=work)
    assert re.search(rf"stage / model alone: {NUMBER}; target >= 50,000 input events/s", out), out


def test_learning_curve(work, small_prepared):
    out = run_script("learning_curve", "--prepared", str(small_prepared), "--reference",
                     str(small_prepared.parent / "reference"), "--out", str(work / "learning_curve"), "--n-train", "0",
                     "--config", "tiny:epochs=1,width=8,depth=1", work=work)
    assert re.search(rf"tiny\s+n_train\s+0: resolution {NUMBER} \({NUMBER}x ellipse\)", out), out


def test_unfolding_toys(work):
    out = run_script("unfolding_toys", "--toys", "20", "--events", "3000", "--replicas", "20", work=work)
    assert re.search(r"20 toys per spectrum, 3,000 events, 20 replicas; targets", out), out


def test_unfolding_toys_from_a_trained_models_response(tiny_trained, small_prepared, work):
    root, _, _ = tiny_trained
    out = run_script("unfolding_toys", "--model", str(root / "models"), "--prepared", str(small_prepared), "--toys",
                     "20", "--events", "400", "--replicas", "20", work=work)
    assert re.search(r"\| same \| smooth \| [\d.]+ \|", out) and "| harder |" not in out, out


@pytest.fixture(scope="module")
def zprime_prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small prepared Z' sample (750 GeV), as the pipeline's Z' branch makes it."""
    root = tmp_path_factory.mktemp("zprime")
    params = SimulateParams(process="zprime", zprime=ZprimeParams(n_events=1500), n_events=1500, workers=1,
                            progress=False, seed=54321)
    run_simulation(params, root / "raw")
    run_prepare(PrepareParams(workers=1), [root / "raw"], root / "prepared")
    return root / "prepared"


def test_zprime_injections(work, tiny_trained, small_prepared, zprime_prepared):
    out = run_script("zprime_injections", "--prepared", str(small_prepared), "--zprime", str(zprime_prepared),
                     "--model", str(tiny_trained[0] / "models"), "--seeds", "1-2", "--out",
                     str(work / "zprime_injections"), work=work)
    assert re.search(r"2 injections of \d+ Z' events \(750 GeV\) into \d+ SM test events", out), out
    assert "position" in out and "yield_ratio" in out, out
