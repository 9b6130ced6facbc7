"""The set architecture on synthetic events with the `objects` columns (l+, l-, four jet slots, MET): built
and compiled as the train stage builds it, it trains, reads the jets in any slot order, ignores what a padded
slot holds, saves and loads, and takes every head.

(The shared prepared fixture gets the `objects` set with prepare's own change; these events are synthetic.)
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mtt.core.dataset import ELLIPSE_FEATURES, FEATURE_SETS, object_columns
from mtt.core.model import ModelSpec, ObjectTokens, TargetTransform, build_network, inference_model, object_tokens
from mtt.core.preprocessing import Scaler
from mtt.stages.train.params import TrainParams
from mtt.stages.train.setup import compiled_network

MAX_JETS = 4
FEATURES = object_columns(MAX_JETS)
PARAMS = TrainParams(feature_set="objects", architecture="set", depth=2, width=32, set_dim=16, set_layers=2,
                     set_heads=2, batch_size=64, epochs=1, scaler="standard")


def synthetic_events(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(features float32 in `FEATURES` order, a true m_tt in GeV): 2 to 4 jets, padded slots zero with mask 0."""
    rng = np.random.default_rng(seed)
    n_jets = rng.integers(2, MAX_JETS + 1, n)
    columns: dict[str, np.ndarray] = {}
    for slot in ("lplus", "lminus"):
        p = rng.normal(0, 50, (n, 3))
        columns |= {f"{slot}_px": p[:, 0], f"{slot}_py": p[:, 1], f"{slot}_pz": p[:, 2],
                    f"{slot}_loge": np.log(np.linalg.norm(p, axis=1) + 1), f"{slot}_muon": rng.integers(0, 2, n)}
    for i in range(MAX_JETS):
        real = (i < n_jets).astype(float)
        p = rng.normal(0, 80 / (1 + i), (n, 3)) * real[:, None]
        columns |= {f"jet{i}_px": p[:, 0], f"jet{i}_py": p[:, 1], f"jet{i}_pz": p[:, 2],
                    f"jet{i}_loge": np.log(np.linalg.norm(p, axis=1) + 5) * real,
                    f"jet{i}_btag": (rng.random(n) < 0.6) * real, f"jet{i}_mask": real}
    columns |= {"met_px": rng.normal(0, 40, n), "met_py": rng.normal(0, 40, n), "n_jets": n_jets.astype(float),
                "n_bjets": sum(columns[f"jet{i}_btag"] for i in range(MAX_JETS))}
    x = np.column_stack([columns[c] for c in FEATURES]).astype(np.float32)
    m_tt = 350 + sum(np.exp(columns[f"jet{i}_loge"]) * columns[f"jet{i}_mask"] for i in range(MAX_JETS))
    return x, m_tt + np.exp(columns["lplus_loge"]) + np.exp(columns["lminus_loge"])


X, M_TT = synthetic_events(256)
SCALER = Scaler.fit(PARAMS.scaler, X, FEATURES)


def swap_slots(x: np.ndarray, a: int, b: int) -> np.ndarray:
    """The events with jet slots a and b (every field, the mask too) exchanged."""
    order = np.arange(x.shape[1])  # any columns after the objects stay
    for field in ("px", "py", "pz", "loge", "btag", "mask"):
        i, j = FEATURES.index(f"jet{a}_{field}"), FEATURES.index(f"jet{b}_{field}")
        order[i], order[j] = j, i
    return x[:, order]


@pytest.fixture(scope="module")
def trained() -> tuple[keras.Model, ModelSpec, float]:
    """The stage's compiled set network after one epoch on the synthetic events, and its final loss."""
    keras.utils.set_random_seed(PARAMS.seed)
    network, spec = compiled_network(PARAMS, FEATURES, SCALER, int(np.ceil(len(X) / PARAMS.batch_size)))
    target = TargetTransform.fit(PARAMS.target_transform, M_TT)
    history = network.fit(X, target.forward(M_TT).astype(np.float32), batch_size=PARAMS.batch_size, epochs=1,
                          verbose=0)
    return network, spec, history.history["loss"][-1]


def test_one_epoch_trains(trained):
    network, spec, loss = trained
    assert spec.architecture == "set" and np.isfinite(loss)
    assert {"ObjectTokens", "MultiHeadAttention", "MaskedMean"} <= {type(layer).__name__ for layer in network.layers}


def test_the_jet_order_does_not_matter(trained):
    network = trained[0]
    swapped = swap_slots(X, 1, 3)  # in the events with 2 or 3 jets, a real jet moves behind a padded slot
    assert (swapped[:, FEATURES.index("jet1_mask")] == 0).any() and (swapped[:, FEATURES.index("jet3_mask")] == 1).all()
    np.testing.assert_allclose(np.asarray(network(swapped)), np.asarray(network(X)), rtol=1e-5, atol=1e-5)


def test_a_padded_slot_is_ignored_whatever_it_holds(trained):
    network = trained[0]
    padded = X[:, FEATURES.index("jet3_mask")] == 0
    assert 0 < padded.sum() < len(X)
    noisy = X.copy()
    for field in ("px", "py", "pz", "loge", "btag"):
        noisy[padded, FEATURES.index(f"jet3_{field}")] = np.random.default_rng(1).normal(0, 300, padded.sum())
    np.testing.assert_array_equal(np.asarray(network(noisy)), np.asarray(network(X)))


def test_save_and_load_predict_the_same(trained, tmp_path):
    network, spec, _ = trained
    model = inference_model(network, spec, TargetTransform.fit(PARAMS.target_transform, M_TT))
    model.save(tmp_path / "model.keras")
    again = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(np.asarray(again(X[:64])), np.asarray(model(X[:64])))
    assert 300 < np.median(np.asarray(again(X))) < 2000  # GeV


@pytest.mark.parametrize(("head", "outputs"), [("point", 1), ("mdn", 9), ("quantile", 3)])
def test_every_head_builds_on_the_set_encoder(head, outputs):
    params = PARAMS.model_copy(update={"head": head, "mdn_components": 3, "set_layers": 1})
    network, spec = compiled_network(params, FEATURES, SCALER, 4)
    assert network.output.shape[-1] == outputs and spec.head == head
    assert np.isfinite(np.asarray(network(X[:8]))).all()


def test_deep_sets_and_extra_globals():
    features = FEATURES + ELLIPSE_FEATURES  # objects+ellipse: the ellipse numbers join n_jets, n_bjets as globals
    x = np.hstack([X, np.random.default_rng(2).normal(size=(len(X), len(ELLIPSE_FEATURES))).astype(np.float32)])
    network = build_network(features, ModelSpec(architecture="set", set_dim=8, set_layers=0, depth=1, width=8))
    assert "MultiHeadAttention" not in {type(layer).__name__ for layer in network.layers}
    assert network.get_layer("objects_and_globals").output.shape[-1] == 8 + 2 + len(ELLIPSE_FEATURES)
    np.testing.assert_allclose(np.asarray(network(swap_slots(x, 0, 2))), np.asarray(network(x)), rtol=1e-5,
                               atol=1e-6)


def test_tokens_hold_momenta_flags_and_type_and_padded_slots_are_zero():
    x = X[:16]
    tokens, mask, globals_ = (np.asarray(t) for t in ObjectTokens(FEATURES, object_tokens(FEATURES))(x))
    assert tokens.shape == (16, 2 + MAX_JETS + 1, 10) and mask.shape == (16, 2 + MAX_JETS + 1)
    column = {name: x[:, i] for i, name in enumerate(FEATURES)}
    np.testing.assert_array_equal(tokens[:, 0, :6], np.column_stack(
        [column["lplus_px"], column["lplus_py"], column["lplus_pz"], column["lplus_loge"], np.zeros(16),
         column["lplus_muon"]]))
    np.testing.assert_array_equal(tokens[:, 3, 4], column["jet1_btag"])
    np.testing.assert_array_equal(tokens[:, -1, :2], np.column_stack([column["met_px"], column["met_py"]]))
    np.testing.assert_array_equal(tokens[:, :, 6:].argmax(-1)[mask[:, 0] == 1][0], [0, 1, 2, 2, 2, 2, 3])
    np.testing.assert_array_equal(mask[:, 2:6], np.column_stack([column[f"jet{i}_mask"] for i in range(MAX_JETS)]))
    assert (tokens[mask == 0] == 0).all() and (mask[:, [0, 1, -1]] == 1).all()
    np.testing.assert_array_equal(globals_, np.column_stack([column["n_jets"], column["n_bjets"]]))


def test_without_the_objects_columns_the_error_says_what_is_needed():
    spec = ModelSpec(architecture="set")
    with pytest.raises(ValueError, match=r"needs the columns of the `objects` feature set .*missing \['lplus_px'"):
        build_network(FEATURE_SETS["extended"], spec)
    with pytest.raises(ValueError, match="needs the feature names"):
        build_network(len(FEATURES), spec)
    with pytest.raises(ValueError, match="unknown architecture 'graph'"):
        build_network(FEATURES, ModelSpec(architecture="graph"))
