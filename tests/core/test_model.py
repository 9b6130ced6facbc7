"""Keras model pieces: preprocessing equals the fitted scikit-learn scalers, losses against hand and scipy
numbers, the seed baseline's architecture, GeV outputs, and a save/load round trip."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from scipy.stats import norm

from mtt.core.model import (
    MixtureNLL,
    ModelSpec,
    Pinball,
    TargetTransform,
    build_network,
    inference_model,
    mdn_parameters,
    preprocessing_layer,
)
from mtt.core.preprocessing import Scaler

RNG = np.random.default_rng(3)
# momentum-like (positive, skewed), angle-like and mass-like columns
FEATURES = np.column_stack([RNG.exponential(60, 2000) + 20, RNG.uniform(-np.pi, np.pi, 2000),
                            RNG.normal(300, 80, 2000)]).astype(np.float32)
#: names that make only the first column momentum-like (log1p under log_features)
COLUMNS = ["lplus_pt", "lplus_phi", "lplus_eta"]


def fit_scaler(kind, x, log_features=False):
    return Scaler.fit(kind, x, COLUMNS, log_features)


@pytest.mark.parametrize("kind", ["minmax", "standard", "robust", "quantile"])
def test_preprocessing_layer_equals_the_sklearn_scaler(kind):
    scaler = fit_scaler(kind, FEATURES.astype(np.float64))
    layer = preprocessing_layer(scaler)
    new = np.vstack([FEATURES[:500] * 1.3, [[5.0, 0.0, 10.0], [900.0, 3.0, 900.0]]]).astype(np.float32)
    np.testing.assert_allclose(np.asarray(layer(new)), scaler.transform(new.astype(np.float64)), atol=2e-5)


def test_log_of_momentum_features_before_scaling():
    log_mask = [True, False, False]
    logged = FEATURES.astype(np.float64).copy()
    logged[:, 0] = np.log1p(logged[:, 0])
    scaler = fit_scaler("standard", FEATURES, log_features=True)
    assert scaler.log_mask == tuple(log_mask) and scaler.name == "standard+log"
    layer = preprocessing_layer(scaler)
    from sklearn.preprocessing import StandardScaler

    expected = StandardScaler().fit(logged).transform(logged)
    np.testing.assert_allclose(np.asarray(layer(FEATURES)), expected, atol=2e-5)
    np.testing.assert_allclose(scaler.transform(FEATURES), expected, atol=1e-12)


def test_mdn_nll_equals_scipy_on_a_hand_example():
    # two components: weights softmax([0, ln 3]) = (0.25, 0.75), means 1 and 4, sigmas softplus^-1 chosen so
    # sigma = 0.5 and 2.0 (+ 1e-4 floor)
    inv_softplus = lambda s: np.log(np.expm1(s - 1e-4))  # noqa: E731
    output = np.array([[0.0, np.log(3.0), 1.0, 4.0, inv_softplus(0.5), inv_softplus(2.0)]], dtype=np.float64)
    y = np.array([[2.5]])
    expected = -np.log(0.25 * norm.pdf(2.5, 1.0, 0.5) + 0.75 * norm.pdf(2.5, 4.0, 2.0))
    loss = MixtureNLL(2, reduction=None)(y, output)
    assert float(np.asarray(loss)[0]) == pytest.approx(expected, rel=1e-6)
    weights, mu, sigma = (np.asarray(t) for t in mdn_parameters(output, 2))
    np.testing.assert_allclose(weights, [[0.25, 0.75]], rtol=1e-6)
    np.testing.assert_allclose(sigma, [[0.5, 2.0]], rtol=1e-6)


def test_pinball_loss_by_hand():
    # y = 10; predictions 8 (q=0.1), 10 (q=0.5), 13 (q=0.9):
    # 0.1 * 2 + 0 + (0.9 - 1) * (-3) = 0.2 + 0.3 = 0.5
    loss = Pinball([0.1, 0.5, 0.9], reduction=None)(np.array([[10.0]]), np.array([[8.0, 10.0, 13.0]]))
    assert float(np.asarray(loss)[0]) == pytest.approx(0.5)


def test_seed_baseline_architecture():
    network = build_network(7, ModelSpec())
    # 4 x 100 ReLU + 1 output on 7 inputs: 7*100+100 + 3*(100*100+100) + 100+1 = 800 + 30300 + 101
    assert network.count_params() == 31201
    dense = [layer for layer in network.layers if isinstance(layer, keras.layers.Dense)]
    assert [d.units for d in dense] == [100, 100, 100, 100, 1]
    assert all(layer.name.startswith("relu") for layer in network.layers if isinstance(layer, keras.layers.Activation))


def test_options_and_heads():
    spec = ModelSpec(depth=3, width=32, batch_norm=True, dropout=0.2, residual=True, head="mdn", components=4)
    network = build_network(5, spec)
    kinds = {type(layer).__name__ for layer in network.layers}
    assert {"BatchNormalization", "Dropout", "Add"} <= kinds
    assert network.output.shape[-1] == 12
    assert build_network(5, ModelSpec(head="quantile", quantiles=(0.1, 0.5, 0.9))).output.shape[-1] == 3
    with pytest.raises(ValueError, match="unknown head 'spline'"):
        build_network(5, ModelSpec(head="spline"))
    with pytest.raises(ValueError, match="the flow head needs the feature names"):
        build_network(5, ModelSpec(head="flow"))
    with pytest.raises(ValueError, match="unknown loss 'l3'"):
        ModelSpec(loss="l3").loss_function()


@pytest.mark.parametrize("kind", ["none", "log", "standardize"])
def test_inference_model_returns_gev(kind):
    m_tt = RNG.normal(500, 150, 1000).clip(350)
    target = TargetTransform.fit(kind, m_tt)
    np.testing.assert_allclose(target.inverse(target.forward(m_tt)), m_tt, rtol=1e-12)
    network = build_network(3, ModelSpec(depth=1, width=8))
    raw = np.asarray(network(FEATURES[:10]))
    gev = np.asarray(inference_model(network, ModelSpec(depth=1, width=8), target)(FEATURES[:10]))
    np.testing.assert_allclose(gev, np.asarray(target.inverse(raw)), rtol=1e-5)


def test_mdn_inference_is_the_mixture_mean():
    spec = ModelSpec(depth=1, width=8, head="mdn", components=3)
    network = build_network(3, spec, preprocessing_layer(fit_scaler("minmax", FEATURES.astype(np.float64))))
    output = np.asarray(network(FEATURES[:20]), dtype=np.float64)
    weights, mu, sigma = (np.asarray(t) for t in mdn_parameters(output, 3))
    target = TargetTransform("log")
    gev = np.asarray(inference_model(network, spec, target)(FEATURES[:20]))[:, 0]
    np.testing.assert_allclose(gev, (weights * np.exp(mu + sigma**2 / 2)).sum(axis=1), rtol=1e-5)


def test_save_and_reload_predict_the_same(tmp_path):
    scaler = fit_scaler("quantile", FEATURES.astype(np.float64))
    spec = ModelSpec(depth=2, width=16, head="mdn", components=2)
    network = build_network(3, spec, preprocessing_layer(scaler))
    model = inference_model(network, spec, TargetTransform.fit("standardize", np.array([400.0, 600.0])))
    model.save(tmp_path / "model.keras")
    again = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(np.asarray(again(FEATURES[:50])), np.asarray(model(FEATURES[:50])), rtol=1e-6)


def test_a_tiny_fit_learns(tmp_path):
    keras.utils.set_random_seed(0)
    x = FEATURES
    m_tt = 2.0 * x[:, 0] + x[:, 2] + 200.0
    target = TargetTransform.fit("standardize", m_tt)
    spec = ModelSpec(depth=2, width=32)
    network = build_network(3, spec, preprocessing_layer(fit_scaler("minmax", x.astype(np.float64))))
    network.compile(keras.optimizers.Adam(1e-2), spec.loss_function())
    history = network.fit(x, target.forward(m_tt), epochs=20, batch_size=128, verbose=0)
    assert history.history["loss"][-1] < 0.05 * history.history["loss"][0]
    prediction = np.asarray(inference_model(network, spec, target)(x))[:, 0]
    assert np.median(np.abs(prediction / m_tt - 1)) < 0.05


# --- augmentation by the collision's symmetries ---------------------------------------------------------

#: a hand-made event: l+ (pt, eta, phi, E), MET (px, py), a jet (px, py, pz), the l+ b mass (invariant)
SYMMETRY_COLUMNS = ["lplus_pt", "lplus_eta", "lplus_phi", "lplus_e", "met_px", "met_py",
                    "jet0_px", "jet0_py", "jet0_pz", "m_lplus_b1"]


def _symmetry_layer(rotate=True, reflect=True, seed=5):
    from mtt.core.model import augmentation_layer

    augment = ("phi_rotation",) * rotate + ("z_reflection",) * reflect
    return augmentation_layer(SYMMETRY_COLUMNS, augment, seed)


def _events(n):
    """n copies of one event: l+ 50 GeV at eta 1.2, phi 3.0; MET (30, -40); a jet (60, 80, -120); m 140 GeV."""
    pt, eta, phi = 50.0, 1.2, 3.0
    event = [pt, eta, phi, pt * np.cosh(eta), 30.0, -40.0, 60.0, 80.0, -120.0, 140.0]
    return np.tile(np.asarray(event, np.float32), (n, 1))


def test_the_symmetry_layer_passes_features_through_at_inference():
    x = _events(8)
    np.testing.assert_array_equal(np.asarray(_symmetry_layer()(x, training=False)), x)
    np.testing.assert_array_equal(np.asarray(_symmetry_layer()(x)), x)


def test_a_turned_and_mirrored_event_keeps_its_invariants():
    x, y = _events(4000), np.asarray(_symmetry_layer()(_events(4000), training=True), np.float64)
    # magnitudes, masses and |eta| are unchanged
    np.testing.assert_allclose(y[:, [0, 3, 9]], x[:, [0, 3, 9]], rtol=1e-6)
    np.testing.assert_allclose(np.hypot(y[:, 4], y[:, 5]), 50.0, rtol=1e-5)  # |MET| = hypot(30, -40)
    np.testing.assert_allclose(np.hypot(y[:, 6], y[:, 7]), 100.0, rtol=1e-5)
    np.testing.assert_allclose(np.abs(y[:, 1]), 1.2, rtol=1e-6)
    # one angle per event: the l+ azimuth and both px/py pairs turn together, so every opening angle stays
    turn = y[:, 2] - 3.0
    for px, py in ((4, 5), (6, 7)):
        before = np.arctan2(x[:, py], x[:, px])
        np.testing.assert_allclose(np.cos(np.arctan2(y[:, py], y[:, px]) - before - turn), 1.0, atol=1e-5)
    assert np.all((y[:, 2] >= -np.pi) & (y[:, 2] < np.pi))
    # one mirror per event: eta and pz flip together
    mirrored = y[:, 1] < 0
    np.testing.assert_allclose(y[:, 8], np.where(mirrored, 120.0, -120.0), rtol=1e-6)
    # the angles cover the circle and half the events are mirrored (binomial: 0.5 +- 0.008)
    assert abs(mirrored.mean() - 0.5) < 0.03
    assert np.histogram(np.cos(turn), bins=4, range=(-1, 1))[0].min() > 500


@pytest.mark.parametrize(("rotate", "reflect", "moved"), [(True, False, [2, 4, 5, 6, 7]), (False, True, [1, 8])])
def test_each_symmetry_moves_only_its_columns(rotate, reflect, moved):
    x = _events(200)
    y = np.asarray(_symmetry_layer(rotate, reflect)(x, training=True))
    still = [j for j in range(len(SYMMETRY_COLUMNS)) if j not in moved]
    np.testing.assert_array_equal(y[:, still], x[:, still])
    assert all(np.ptp(y[:, j]) > 0 for j in moved)


def test_an_unknown_column_is_not_guessed():
    from mtt.core.model import augmentation_layer

    with pytest.raises(ValueError, match=r"not known how columns \['top_y'\] change"):
        augmentation_layer(["lplus_pt", "top_y"], ("z_reflection",), 0)
    with pytest.raises(ValueError, match=r"columns \['met_px'\] lack their px/py partner"):
        augmentation_layer(["met_px", "lplus_pt"], ("phi_rotation",), 0)
    with pytest.raises(ValueError, match="unknown augmentation"):
        build_network(SYMMETRY_COLUMNS, ModelSpec(augment=("boost",)))


# --- ensembles -----------------------------------------------------------------------------------------


def test_an_mdn_ensemble_is_the_mixture_of_its_members_mixtures():
    from mtt.core.distributions import Mixture
    from mtt.core.layers import combine_members

    # member A: one Gaussian at 0 (logit 0); member B: one at 1 (logit 5, which normalises away): equal shares
    raw_sigma = np.log(np.expm1(0.3))  # softplus^-1(0.3)
    members = np.array([[0.0, 0.0, raw_sigma, 5.0, 1.0, raw_sigma]])
    union = np.asarray(keras.ops.convert_to_numpy(combine_members(members, "mdn", 1, 2)))
    mixture = Mixture.from_head(union, 2)
    np.testing.assert_allclose(mixture.weights, [[0.5, 0.5]], atol=1e-7)
    np.testing.assert_allclose(mixture.mu, [[0.0, 1.0]])
    np.testing.assert_allclose(mixture.median(), [0.5], atol=1e-6)  # symmetric about 0.5
    point = keras.ops.convert_to_numpy(combine_members(np.array([[1.0, 3.0]]), "point", 1, 2))
    np.testing.assert_allclose(point, [[2.0]])


def test_an_ensembles_loss_is_the_mean_of_its_members_losses():
    from mtt.core.layers import MemberMean

    loss = MemberMean("mean_squared_error", 2)
    y_pred, y_true = np.array([[1.0, 3.0], [2.0, 2.0]], np.float32), np.array([0.0, 2.0], np.float32)
    # event 1: (1 + 9) / 2 = 5; event 2: 0; mean 2.5
    assert float(loss(y_true, y_pred)) == pytest.approx(2.5)
    nll = MemberMean(MixtureNLL(1), 2)
    single = MixtureNLL(1)
    y = np.array([0.3], np.float32)
    a, b = np.array([[0.0, 0.1, 0.2]], np.float32), np.array([[0.0, -0.5, 0.7]], np.float32)
    expected = (float(single(y, a)) + float(single(y, b))) / 2
    assert float(nll(y, np.concatenate([a, b], axis=1))) == pytest.approx(expected, rel=1e-6)


def test_a_member_trains_as_it_would_alone():
    """No gradient crosses between members and Adam does not see the 1/members factor: member 0 of an
    ensemble ends where the same network trained alone ends."""
    x = FEATURES[:512]
    y = ((x[:, 0] - 80.0) / 60.0).astype(np.float32)
    final = {}
    for members in (1, 3):
        keras.utils.set_random_seed(1)
        spec = ModelSpec(depth=2, width=8, members=members)
        network = build_network(3, spec, preprocessing_layer(fit_scaler("standard", x.astype(np.float64))), seed=9)
        network.compile(keras.optimizers.Adam(1e-2, epsilon=1e-12), spec.loss_function())
        network.fit(x, y, epochs=3, batch_size=64, shuffle=False, verbose=0)
        prefix = "" if members == 1 else "member0_"
        final[members] = np.asarray(network.get_layer(f"{prefix}dense_1").kernel)
    np.testing.assert_allclose(final[3], final[1], rtol=1e-3, atol=1e-5)


def test_an_augmented_ensemble_saves_reloads_and_predicts_the_same(tmp_path):
    from mtt.core.dataset import feature_columns
    from mtt.core.inference import head_output

    names = feature_columns(["lowlevel"])
    x = np.abs(RNG.normal(50, 20, (64, len(names)))).astype(np.float32)
    spec = ModelSpec(depth=1, width=8, head="mdn", components=2, members=3, augment=("phi_rotation", "z_reflection"))
    network = build_network(names, spec, seed=2)
    model = inference_model(network, spec, TargetTransform.fit("standardize", np.array([400.0, 600.0])))
    model.save(tmp_path / "model.keras")
    again = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(model(x)), rtol=1e-6)
    output = head_output(again, x, {})
    assert output.mixture.weights.shape == (64, 6)  # 3 members x 2 Gaussians
    np.testing.assert_allclose(output.mixture.mean_gev(), np.asarray(model(x))[:, 0], rtol=1e-5)


def test_the_flow_target_adds_the_log_ratio_of_true_to_reconstructed_m_tt():
    """The hand event of test_flow_layers (l+ l- along x, b jets along y, neutrinos along z: m_reco = 130 GeV)
    with a true m_tt of 130 e^0.1 GeV: the 7th coordinate is 0.1."""
    from mtt.core.dataset import LOWLEVEL
    from mtt.core.model import flow_target

    row = dict.fromkeys(LOWLEVEL, 0.0)
    for name, pt, phi, energy in (("lplus", 10, 0, 10), ("lminus", 10, np.pi, 10), ("b1", 20, np.pi / 2, 25),
                                  ("b2", 20, -np.pi / 2, 25)):
        row.update({f"{name}_pt": pt, f"{name}_eta": 0.0, f"{name}_phi": phi, f"{name}_e": energy})
    x = np.array([[row[c] for c in LOWLEVEL]], np.float32)
    nu = np.array([[0.0, 0.0, 30.0, 0.0, 0.0, -30.0]])
    target = flow_target(nu, x, LOWLEVEL, np.array([130.0 * np.exp(0.1)]), correction=True)
    assert target.shape == (1, 7) and target[0, :6].tolist() == nu[0].tolist()
    assert target[0, 6] == pytest.approx(0.1, abs=1e-6)
    assert flow_target(nu, x, LOWLEVEL, np.array([130.0]), correction=False) is nu
