"""Shared fixtures: tiny real simulations (Pythia, fastjet, uproot) reused across tests."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import mlflow
import pytest
import uproot
from mlflow.tracking import MlflowClient

from mtt.core.events.params import PrepareParams
from mtt.stages.prepare.stage import run_prepare
from mtt.stages.simulate.params import SimulateParams
from mtt.stages.simulate.stage import run_simulation
from mtt.stages.validate.params import ValidateParams

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

#: a small parton-level sample: two chunks, one worker, no progress bar
SMALL = SimulateParams(n_events=600, events_per_chunk=300, workers=1, progress=False, seed=2026)


def read_events(folder: Path) -> ak.Array:
    """All Events of a simulate output folder, in chunk order."""
    files = sorted(folder.glob("events_*.root"))
    return uproot.concatenate([f"{f}:Events" for f in files])


@pytest.fixture(scope="session")
def small_sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, ak.Array]:
    """(folder, summary, events) of a 600-event parton-level simulation."""
    out = tmp_path_factory.mktemp("sim") / "raw"
    summary = run_simulation(SMALL, out)
    return out, summary, read_events(out)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, found through scikit-hep-testdata without network."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def small_prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Prepared train/val/test splits of 2000 simulated events (~390 selected), and their train reference
    (profile and scalers, in the sibling folder `reference`): for train and evaluate."""
    from mtt.core.dataset import open_split, split_path
    from mtt.stages.validate.reference import build_reference

    root = tmp_path_factory.mktemp("prepared")
    run_simulation(SimulateParams(n_events=2000, workers=1, progress=False, seed=11), root / "raw")
    run_prepare(PrepareParams(workers=1), [root / "raw"], root / "prepared")
    train = open_split(split_path(root / "prepared", "train"))
    build_reference(train.read(), train.metadata["features"], ValidateParams(), root / "reference")
    return root / "prepared"


@pytest.fixture(scope="session")
def tiny_trained(small_prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A 1-epoch, 8-unit model of the tiny sample in its own SQLite store (registered as its params say):
    (folder holding `models/`, store URI, run id). For tests that need some trained model, not a good one."""
    from mtt.stages.train.params import TrainParams
    from mtt.stages.train.stage import TrainPaths, run_train

    root = tmp_path_factory.mktemp("tiny_trained")
    uri = f"sqlite:///{root}/mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(root)
        paths = TrainPaths(prepared=small_prepared, reference=small_prepared.parent / "reference",
                           model=root / "models")
        run_id = run_train(TrainParams(epochs=1, batch_size=64, width=8, depth=1), paths)["run_id"]
    mlflow.set_tracking_uri(None)
    return root, uri, run_id


@pytest.fixture(autouse=True)
def _no_inherited_tracking_uri():
    """`tracking.configure()` sets MLflow's process-wide tracking URI: without this, a test would log into (or
    read the registry of) the store of a test before it, whatever MLFLOW_TRACKING_URI it sets."""
    yield
    mlflow.set_tracking_uri(None)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    """A fresh SQLite tracking store; the working directory is tmp_path, so artifacts land there."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    yield MlflowClient(tracking_uri=uri)
    mlflow.set_tracking_uri(None)
