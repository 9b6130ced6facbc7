"""Scalers as plain numbers: the same transform as scikit-learn, column subsets, and files without pickle."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.preprocessing import MinMaxScaler, QuantileTransformer, RobustScaler, StandardScaler

from mtt.core.errors import ArtifactError
from mtt.core.preprocessing import (
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


@pytest.mark.parametrize("kind", SCALERS)
def test_a_mask_column_passes_every_scaler_and_its_model_layer_unchanged(kind):
    from mtt.core.model import preprocessing_layer

    # jet0_mask is constant 1 in the data (two selected jets at least), jet3_mask a 0/1 padding mask
    columns = [*COLUMNS, "jet0_mask", "jet3_mask"]
    masks = np.column_stack([np.ones(len(X)), RNG.random(len(X)) < 0.3]).astype(np.float32)
    x = np.hstack([X.astype(np.float32), masks])
    scaler = Scaler.fit(kind, x, columns, log_features=True)
    assert scaler.unscaled == (False, False, False, True, True)
    np.testing.assert_array_equal(scaler.transform(x)[:, 3:], masks)
    layer_out = np.asarray(preprocessing_layer(scaler)(x))
    np.testing.assert_array_equal(layer_out[:, 3:], masks)
    # the other columns are scaled as before
    alone = Scaler.fit(kind, x[:, :3], COLUMNS, log_features=True)
    np.testing.assert_allclose(scaler.transform(x)[:, :3], alone.transform(x[:, :3]))


@pytest.mark.parametrize("kind", SCALERS)
def test_jet_slots_share_one_fit_so_swapping_slots_swaps_the_scaled_columns(kind):
    # the leading jet is harder than the third: fitted column by column they would be scaled differently
    columns = ["jet0_px", "jet0_mask", "jet1_px", "jet1_mask", "m_bb"]
    x = np.column_stack([RNG.normal(0, 90, 3000), np.ones(3000), RNG.normal(0, 40, 3000),
                         RNG.random(3000) < 0.5, X[:, 2]])
    scaler = Scaler.fit(kind, x, columns)
    swapped = x[:, [2, 3, 0, 1, 4]]
    np.testing.assert_allclose(scaler.transform(swapped), scaler.transform(x)[:, [2, 3, 0, 1, 4]], atol=1e-12)
    pooled = Scaler.fit(kind, np.concatenate([x[:, 0], x[:, 2]])[:, None], ["px"])
    np.testing.assert_allclose(scaler.transform(x)[:, 0], pooled.transform(x[:, :1])[:, 0], atol=1e-12)
    assert scaler.fitted_on(x)[0]
