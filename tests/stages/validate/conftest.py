"""A clean prepared dataset for validation tests: real simulated events, bootstrapped to useful sizes.

A 4000-event Pythia run through prepare gives ~700 selected events; train, val and test are bootstrap
samples of those rows (the same parent distribution, so no drift), large enough that a 10% shift of one
feature stands far above the statistical noise the drift bounds allow for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mtt.core.dataset import IDENTITY, METADATA_KEY, truth_columns
from mtt.core.events.params import PrepareParams
from mtt.stages.prepare.stage import run_prepare
from mtt.stages.simulate.params import SimulateParams
from mtt.stages.simulate.stage import run_simulation
from mtt.stages.validate.params import ValidateParams
from mtt.stages.validate.reference import build_reference

SIZES = {"train": 20_000, "val": 5_000, "test": 5_000}
PARAMS = ValidateParams()


@pytest.fixture(scope="session")
def prepared(tmp_path_factory) -> tuple[Path, dict[str, pd.DataFrame], list[str]]:
    """(folder of bootstrapped splits with prepare's metadata, the frames, the feature columns)."""
    root = tmp_path_factory.mktemp("validate")
    run_simulation(SimulateParams(n_events=4000, workers=1, progress=False, seed=99), root / "raw")
    run_prepare(PrepareParams(workers=1), [root / "raw"], root / "small")
    pool = pd.concat([pd.read_parquet(root / "small" / f"{s}.parquet") for s in SIZES], ignore_index=True)
    metadata = pq.read_schema(root / "small" / "train.parquet").metadata
    rng = np.random.default_rng(5)
    folder = root / "prepared"
    folder.mkdir()
    frames, first = {}, 0
    for split, n in SIZES.items():
        frame = pool.iloc[rng.integers(0, len(pool), n)].reset_index(drop=True)
        frame["event"] = np.arange(first, first + n, dtype=np.uint64)  # unique ids: no event in two splits
        first += n
        table = pa.Table.from_pandas(frame, preserve_index=False)
        pq.write_table(table.replace_schema_metadata({**table.schema.metadata, METADATA_KEY: metadata[METADATA_KEY]}),
                       folder / f"{split}.parquet")
        frames[split] = pd.read_parquet(folder / f"{split}.parquet")
    truth = truth_columns(list(frames["train"].columns))  # m_tt, the diagnostics, the truth neutrinos
    features = [c for c in frames["train"].columns if c not in (*truth, *IDENTITY)]
    return folder, frames, features


@pytest.fixture(scope="session")
def reference(prepared, tmp_path_factory) -> Path:
    """The train reference (profile and every scaler) of the clean dataset."""
    _, frames, features = prepared
    folder = tmp_path_factory.mktemp("reference") / "reference"
    build_reference(frames["train"], features, PARAMS, folder)
    return folder
