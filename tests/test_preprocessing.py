"""Scalers as plain numbers: the same transform as scikit-learn, column subsets, and files without pickle."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.preprocessing import MinMaxScaler, QuantileTransformer, RobustScaler, StandardScaler

from mtt.errors import ArtifactError
from mtt.preprocessing import (
    SCALERS,
    Scaler,
    load_reference_scaler,
    load_scaler,
    load_scalers,
    momentum_like,
    save_scaler,
    save_scalers,
)

RNG = np.random.default_rng(7)
COLUMNS = ["b1_pt", "b1_eta", "m_bb"]
X = np.column_stack([RNG.exponential(60, 3000) + 20, RNG.normal(0, 1.2, 3000), RNG.normal(200, 60, 3000)])
SKLEARN = {"minmax": MinMaxScaler(), "standard": StandardScaler(), "robust": RobustScaler(),
           "quantile": QuantileTransformer(n_quantiles=1000, subsample=10**9, random_state=0)}


@pytest.mark.parametrize("kind", SCALERS)
def test_transform_equals_scikit_learn(kind):
    ours = Scaler.fit(kind, X, COLUMNS)
    new = X[:200] * 1.2
    np.testing.assert_array_equal(ours.transform(new), SKLEARN[kind].fit(X).transform(new))


def test_momentum_like_columns_get_the_log():
    assert momentum_like(["b1_pt", "b1_eta", "m_bb", "ht", "met_pt", "met_px", "b1_e", "n_jets"]) == [
        True, False, True, True, True, False, True, False]
    logged = Scaler.fit("standard", X, COLUMNS, log_features=True)
    expected = X.copy()
    expected[:, [0, 2]] = np.log1p(np.maximum(expected[:, [0, 2]], 0))  # as prepare: no negative masses
    np.testing.assert_allclose(logged.transform(X), StandardScaler().fit(expected).transform(expected))


@pytest.mark.parametrize("kind", SCALERS)
def test_a_column_subset_scales_as_its_own_fit(kind):
    subset = Scaler.fit(kind, X, COLUMNS).subset(["m_bb", "b1_pt"])
    assert subset.columns == ("m_bb", "b1_pt")
    np.testing.assert_allclose(subset.transform(X[:, [2, 0]]), Scaler.fit(kind, X[:, [2, 0]],
                                                                          ["m_bb", "b1_pt"]).transform(X[:, [2, 0]]))


def test_fitted_on_tells_the_train_split_from_another(tmp_path):
    scaler = Scaler.fit("minmax", X, COLUMNS)
    assert scaler.fitted_on(X)[0]
    assert not scaler.fitted_on(X[:1000])[0]


def test_files_round_trip_without_pickle(tmp_path):
    scalers = {"standard": Scaler.fit("standard", X, COLUMNS), "quantile+log": Scaler.fit("quantile", X, COLUMNS, True)}
    save_scalers(scalers, tmp_path / "scalers.npz")
    with np.load(tmp_path / "scalers.npz", allow_pickle=False) as stored:  # nothing in it needs unpickling
        assert "header" in stored.files
    loaded = load_scalers(tmp_path / "scalers.npz")
    assert set(loaded) == {"standard", "quantile+log"} and loaded["quantile+log"].name == "quantile+log"
    for name, scaler in scalers.items():
        np.testing.assert_array_equal(loaded[name].transform(X), scaler.transform(X))
    save_scaler(scalers["standard"], tmp_path / "one.npz")
    assert load_scaler(tmp_path / "one.npz").kind == "standard"


def test_missing_corrupt_and_absent_scalers_are_named(tmp_path):
    with pytest.raises(ArtifactError, match="scalers.npz: scaler file missing; run the validate stage"):
        load_scalers(tmp_path / "scalers.npz")
    (tmp_path / "scalers.npz").write_bytes(b"\x00garbage")
    with pytest.raises(ArtifactError, match="scalers.npz: not a readable scaler file"):
        load_scalers(tmp_path / "scalers.npz")
    save_scalers({"standard": Scaler.fit("standard", X, COLUMNS)}, tmp_path / "scalers.npz")
    with pytest.raises(ArtifactError, match=r"no 'minmax\+log' scaler \(it holds standard\)"):
        load_reference_scaler(tmp_path, "minmax", True, ["b1_pt"])
    with pytest.raises(ArtifactError, match=r"no fit for columns \['m_ll'\]"):
        load_reference_scaler(tmp_path, "standard", False, ["b1_pt", "m_ll"])
    assert load_reference_scaler(tmp_path, "standard", False, ["m_bb"]).columns == ("m_bb",)
