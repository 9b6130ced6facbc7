"""Shared fixtures: tiny real simulations (Pythia, fastjet, uproot) reused across tests."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import pytest
import uproot

from mtt.config import SimulateParams
from mtt.simulate import run_simulation

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
