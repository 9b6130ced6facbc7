"""The prepared-data contract: column groups, the split hash, metadata and `open_split`'s one error per fault."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mtt.core.dataset import (
    ELLIPSE_FEATURES,
    EXTENDED,
    FEATURE_SETS,
    LOWLEVEL,
    MAX_JETS,
    METADATA_KEY,
    SEED,
    check_finite,
    feature_columns,
    nested_subset,
    object_columns,
    open_split,
    read_metadata,
    split_path,
    symmetry_roles,
    unit,
    unit_interval_hash,
    written_jets,
)
from mtt.core.errors import DataError


def write(path, frame, metadata=None):
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata is not None:
        table = table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata).encode()})
    pq.write_table(table, path)
    return path


def seed_frame(n=5):
    frame = pd.DataFrame({c: np.arange(n, dtype=np.float32) + 100 for c in SEED})
    return frame.assign(m_tt=np.full(n, 500.0, np.float32), run=np.ones(n, np.uint32),
                        luminosityBlock=np.ones(n, np.uint32), event=np.arange(n, dtype=np.uint64))


def test_feature_sets_nest_and_have_units():
    assert len(SEED) == 7 and len(LOWLEVEL) == 18 and len(EXTENDED) == 41
    assert set(SEED) <= set(EXTENDED) and set(LOWLEVEL) <= set(EXTENDED)
    assert feature_columns(["seed", "extended"])[:7] == SEED
    # objects: 2 leptons x 5 fields, 10 jets x 6 fields, 4 globals (met_px, met_py, n_jets, n_bjets shared)
    assert len(object_columns()) == 74 and len(object_columns(3)) == 32 and written_jets(object_columns(3)) == 3
    assert len(feature_columns(list(FEATURE_SETS))) == 41 + 70 + 6
    assert feature_columns(["objects+ellipse"], max_jets=2) == [*object_columns(2), *ELLIPSE_FEATURES]
    with pytest.raises(DataError, match=r"unknown feature set 'objects\+elipse'; known: .*ellipse"):
        feature_columns(["objects+elipse"])
    assert (unit("b1_pt"), unit("b1_phi"), unit("dr_b1_b2"), unit("m_ll"), unit("event")) == (
        "GeV", "rad", "", "GeV", "")
    assert (unit("jet3_loge"), unit("jet3_mask"), unit("jet3_px"), unit("ellipse1_exact")) == (
        "log(E/GeV)", "", "GeV", "")


def test_objects_are_read_with_as_many_jets_as_asked_and_no_more_than_written(tmp_path):
    columns = [*object_columns(3), *ELLIPSE_FEATURES]
    frame = pd.DataFrame({c: np.ones(4, np.float32) for c in columns}).assign(m_tt=np.full(4, 500.0, np.float32))
    path = write(tmp_path / "train.parquet", frame,
                 {"feature_sets": {"objects": object_columns(3), "ellipse": ELLIPSE_FEATURES}})
    split = open_split(path)
    assert split.features("objects") == object_columns(3)
    assert split.features("objects+ellipse", max_jets=2) == [*object_columns(2), *ELLIPSE_FEATURES]
    with pytest.raises(DataError, match=r"5 jets requested \(train.max_jets\) but prepare wrote 3 "
                                        r"\(prepare.max_jets\)"):
        split.features("objects", max_jets=5)
    with pytest.raises(DataError, match=r"no feature set 'extended' in the file \(it holds objects, ellipse\)"):
        split.features("objects+extended")


def test_the_split_hash_is_uniform_and_depends_on_identity_only():
    u = unit_interval_hash(np.ones(20_000), np.zeros(20_000), np.arange(20_000))
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    assert unit_interval_hash([1], [0], [7])[0] == u[7]


def test_nested_subsets():
    ids = pd.DataFrame({"run": np.ones(500, np.uint32), "luminosityBlock": np.ones(500, np.uint32),
                        "event": np.arange(500, dtype=np.uint64)})
    small, large = nested_subset(ids, 50), nested_subset(ids, 200)
    assert len(small) == 50 and set(small) <= set(large) and np.all(np.diff(large) > 0)
    assert np.array_equal(nested_subset(ids, 0), np.arange(500))


def test_open_split_checks_file_metadata_feature_set_and_target(tmp_path):
    good = write(tmp_path / "train.parquet", seed_frame(), {"features": SEED, "feature_sets": {"seed": SEED}})
    split = open_split(good, "seed")
    assert split.n_rows == 5 and split.has_truth and read_metadata(good)["features"] == SEED
    x, m_tt = split.arrays(split.features("seed"))
    assert x.dtype == np.float32 and x.shape == (5, 7) and m_tt.dtype == np.float64

    with pytest.raises(DataError, match=r"nowhere/train.parquet: prepared split missing; run the prepare stage"):
        open_split(tmp_path / "nowhere" / "train.parquet")
    with pytest.raises(DataError, match="no mtt metadata: not written by `mtt prepare`"):
        open_split(write(tmp_path / "plain.parquet", seed_frame()))
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="junk.parquet: not a readable Parquet file"):
        open_split(tmp_path / "junk.parquet")
    with pytest.raises(DataError, match="no feature set 'extended' in the file"):
        open_split(good, "extended")
    reordered = [SEED[1], SEED[0], *SEED[2:]]
    swapped = write(tmp_path / "swapped.parquet", seed_frame(), {"feature_sets": {"seed": reordered}})
    with pytest.raises(DataError, match=r"feature set 'seed' holds .* \(columns missing or reordered\)"):
        open_split(swapped, "seed")
    no_truth = write(tmp_path / "data.parquet", seed_frame().drop(columns="m_tt"), {"feature_sets": {"seed": SEED}})
    with pytest.raises(DataError, match="no target column 'm_tt' \\(truth-less data"):
        open_split(no_truth)
    assert not open_split(no_truth, need_target=False).has_truth
    missing = write(tmp_path / "missing.parquet", seed_frame().drop(columns="m_bb"), {"feature_sets": {"seed": SEED}})
    with pytest.raises(DataError, match=r"missing columns \['m_bb'\]"):
        open_split(missing, "seed")


def test_nan_is_named_with_column_and_row():
    x = np.ones((6, 2), np.float32)
    x[4, 1] = np.nan
    with pytest.raises(DataError, match=r"f.parquet: NaN or inf in column 'b' \(1 values, first at row 14\)"):
        check_finite(x, np.ones(6), ["a", "b"], "f.parquet", first_row=10)
    with pytest.raises(DataError, match=r"column 'm_tt'"):
        check_finite(np.ones((2, 2)), np.array([1.0, np.inf]), ["a", "b"], "f.parquet")


def test_split_paths():
    assert split_path("data/prepared", "val").as_posix() == "data/prepared/val.parquet"
    with pytest.raises(DataError, match="unknown split 'dev'"):
        split_path("data/prepared", "dev")


def test_the_params_schema_knows_the_same_feature_sets_as_the_contract():
    """config cannot import the contract (simulate would depend on it): the names are kept equal here."""
    from typing import get_args

    from mtt.core.dataset import FeatureSetName

    assert set(get_args(FeatureSetName)) == set(FEATURE_SETS)


def test_every_contract_feature_has_a_known_symmetry_role():
    features = feature_columns(list(FEATURE_SETS))
    roles = symmetry_roles(features)
    named = {key: [features[i] for i in getattr(roles, key)] for key in ("phi", "px", "py", "z_odd")}
    assert named["phi"] == ["lplus_phi", "lminus_phi", "b1_phi", "b2_phi"]
    assert [c.removesuffix("_px") for c in named["px"]] == [c.removesuffix("_py") for c in named["py"]]
    assert len(named["px"]) == 1 + 2 + MAX_JETS  # MET, two leptons, the jet slots
    assert len(named["z_odd"]) == 4 + 2 + MAX_JETS  # four etas; the leptons' and jets' pz
