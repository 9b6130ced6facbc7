"""The same events twice: refused by prepare, caught by validate and by train."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from reliability.conftest import rewrite

from mtt.core.errors import DataError, PrepareError, ValidationFailed
from mtt.core.events.params import PrepareParams
from mtt.stages.prepare.stage import run_prepare
from mtt.stages.train.params import TrainParams
from mtt.stages.train.stage import TrainPaths, run_train
from mtt.stages.validate.params import ValidateParams
from mtt.stages.validate.stage import validate_new


def test_an_input_folder_given_twice_is_refused(small_sim, tmp_path):
    raw, _, _ = small_sim
    with pytest.raises(PrepareError, match="given twice as input"):
        run_prepare(PrepareParams(workers=1), [raw, raw], tmp_path / "prepared")
    assert not (tmp_path / "prepared").exists()


def test_a_copied_input_file_is_refused(small_sim, tmp_path):
    raw, _, _ = small_sim
    copy = tmp_path / "copy.root"
    shutil.copy(sorted(raw.glob("*.root"))[0], copy)
    with pytest.raises(PrepareError, match=r"copy.root: same content \(SHA-256 .*\) as .*events_00000.root"):
        run_prepare(PrepareParams(workers=1), [raw, copy], tmp_path / "prepared")
    assert not (tmp_path / "prepared").exists()


def _doubled(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([frame, frame], ignore_index=True)


@pytest.mark.slow  # a full GX run; train refusing the same rows below is the fast case
def test_validate_catches_repeated_event_ids(small_prepared, tmp_path):
    from mtt.stages.validate.reference import build_reference

    train = pd.read_parquet(small_prepared / "train.parquet")
    features = [c for c in train.columns if train[c].dtype == np.float32 and c not in (
        "m_tt", "top_pt", "top_y", "antitop_pt", "antitop_y", "weight")]
    build_reference(train, features, ValidateParams(), tmp_path / "reference")
    val = pd.read_parquet(small_prepared / "val.parquet")
    with pytest.raises(ValidationFailed, match=r"new: schema: \(table\): expect_compound_columns_to_be_unique"):
        validate_new(ValidateParams(drift={"action": "warn"}), _doubled(val), tmp_path / "reference")


def test_train_refuses_repeated_events(small_prepared, tmp_path):
    doubled = rewrite(small_prepared, tmp_path / "doubled" / "prepared", _doubled, splits=("train",))
    paths = TrainPaths(prepared=doubled, reference=tmp_path / "doubled" / "reference", model=tmp_path / "models")
    with pytest.raises(DataError, match=r"train.parquet: train refuses this data.*\n  event ids: \d+ rows share"):
        run_train(TrainParams(epochs=1, width=8, depth=1), paths)
