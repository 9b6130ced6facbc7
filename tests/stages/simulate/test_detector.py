"""Detector response: the card's formulas, pair building, jets, and efficiencies on hand-built events."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import vector

from mtt.core.kinematics import delta_r
from mtt.stages.simulate.detector import (
    DetectorCard,
    btag_efficiency,
    cluster_jets,
    electron_efficiency,
    electron_resolution,
    jet_energy_resolution,
    lognormal_smear,
    muon_efficiency,
    muon_resolution,
    pairs_in_events,
    reconstruct,
)

vector.register_awkward()
CARD = DetectorCard()


def _block(events: list[list[tuple[int, float, float, float]]]) -> dict[str, np.ndarray]:
    """Generator-style (counts, pid, px, py, pz, e) columns from (pid, pt, eta, phi) massless particles."""
    flat = [p for event in events for p in event]
    pid = np.array([p[0] for p in flat], dtype=np.int32)
    v = vector.array({"pt": [p[1] for p in flat], "eta": [p[2] for p in flat], "phi": [p[3] for p in flat],
                      "mass": np.zeros(len(flat))})
    return {"n": np.array([len(e) for e in events], dtype=np.int64), "pid": pid,
            "px": np.asarray(v.px), "py": np.asarray(v.py), "pz": np.asarray(v.pz), "e": np.asarray(v.E)}


def _columns(leptons, visible, hf=None) -> dict:
    n = len(leptons)
    return {"lepton": _block(leptons), "visible": _block(visible), "hf": _block(hf or [[] for _ in range(n)])}


def test_resolutions_match_the_card_by_hand():
    # electron, |eta| <= 0.5, pT = 100: sqrt(0.03^2 + (100 * 1.3e-3)^2) = sqrt(0.0009 + 0.0169) = 0.13342
    assert electron_resolution(np.array([100.0]), np.array([0.2]))[0] == pytest.approx(0.133417, rel=1e-5)
    # endcap electron at 50 GeV: sqrt(0.15^2 + 0.155^2) = 0.215696
    assert electron_resolution(np.array([50.0]), np.array([-2.0]))[0] == pytest.approx(0.215696, rel=1e-5)
    # barrel muon at 200 GeV, |eta| = 1: sqrt(0.015^2 + 0.03^2) = 0.0335410
    assert muon_resolution(np.array([200.0]), np.array([1.0]))[0] == pytest.approx(0.0335410, rel=1e-5)
    # jet, E = 100 GeV central: sqrt(100^2 * 0.05^2 + 100 * 1.5^2) = sqrt(25 + 225) = 15.8114
    assert jet_energy_resolution(np.array([100.0]), np.array([0.0]))[0] == pytest.approx(15.8114, rel=1e-5)
    # forward, E = 400: sqrt(400^2 * 0.13^2 + 400 * 2.7^2) = sqrt(2704 + 2916) = 74.967
    assert jet_energy_resolution(np.array([400.0]), np.array([3.5]))[0] == pytest.approx(74.967, rel=1e-4)


def test_efficiencies_match_the_card():
    pt = np.array([5.0, 30.0, 30.0, 30.0, 30.0])
    eta = np.array([0.0, 1.0, 2.0, 2.45, 2.6])
    np.testing.assert_allclose(electron_efficiency(pt, eta), [0.0, 0.95, 0.85, 0.85, 0.0])
    np.testing.assert_allclose(muon_efficiency(pt, eta), [0.0, 0.95, 0.95, 0.0, 0.0])
    # b at 50 GeV: 0.85 tanh(0.125) * 25 / (1 + 3.15) = 0.85 * 0.124353 * 6.024096 = 0.636746
    flavour = np.array([5, 4, 0])
    np.testing.assert_allclose(btag_efficiency(np.full(3, 50.0), flavour),
                               [0.636746, 0.25 * np.tanh(0.9) / 1.065, 0.01 + 0.0019], rtol=1e-5)


def test_lognormal_smearing_keeps_the_mean_and_has_the_width():
    z = np.random.default_rng(0).standard_normal(400_000)
    smeared = lognormal_smear(np.full(z.size, 50.0), np.full(z.size, 0.1), z)
    assert smeared.mean() == pytest.approx(50.0, rel=1e-3)
    assert smeared.std() / 50.0 == pytest.approx(0.1, rel=1e-2)
    assert smeared.min() > 0


def test_pairs_in_events_is_a_jagged_cartesian_product():
    ia, ib = pairs_in_events(np.array([2, 0, 1]), np.array([1, 3, 2]))
    # event 0: a0,a1 x b0; event 1: no a; event 2: a2 x b4,b5
    assert list(zip(ia.tolist(), ib.tolist(), strict=True)) == [(0, 0), (1, 0), (2, 4), (2, 5)]


def test_delta_r_wraps_phi():
    assert delta_r(np.array([0.0]), np.array([3.1]), np.array([0.0]), np.array([-3.1]))[0] == pytest.approx(
        2 * np.pi - 6.2)
    assert delta_r(np.array([1.0]), np.array([0.0]), np.array([-2.0]), np.array([4.0]))[0] == pytest.approx(
        np.hypot(3.0, 4.0 - 2 * np.pi))


def test_anti_kt_merges_close_particles_into_the_expected_mass():
    # two massless 50 GeV particles at eta 0, dphi = 0.1: m = 50 sqrt(2 (1 - cos 0.1)) = 4.99792 GeV
    visible = _columns([[]], [[(21, 50.0, 0.0, 0.0), (21, 50.0, 0.0, 0.1), (21, 40.0, 1.0, 2.5)]])["visible"]
    particles = ak.unflatten(ak.zip({"px": visible["px"], "py": visible["py"], "pz": visible["pz"],
                                     "E": visible["e"]}, with_name="Momentum4D"), visible["n"])
    jets = cluster_jets(particles, CARD)
    jets = jets[ak.argsort(jets.pt, ascending=False)]
    assert ak.num(jets).tolist() == [2]
    assert jets.mass[0, 0] == pytest.approx(4.99792, rel=1e-5)
    assert jets.pt[0, 0] == pytest.approx(100 * np.cos(0.05), rel=1e-6)
    assert jets.pt[0, 1] == pytest.approx(40.0)


def test_isolated_lepton_efficiency_within_statistical_tolerance():
    n = 20_000
    rng = np.random.default_rng(3)
    eta = rng.uniform(-2.5, 2.5, n)
    # one lepton per event, alternating e+/mu-, far from a single soft visible particle
    leptons = [[(-11 if i % 2 == 0 else 13, 40.0, eta[i], 0.0)] for i in range(n)]
    visible = [[(21, 1.0, 0.0, 3.0)] for _ in range(n)]
    reco = reconstruct(_columns(leptons, visible), np.random.default_rng(7), CARD)
    n_e = ak.to_numpy(ak.num(reco["Electron"]))
    n_mu = ak.to_numpy(ak.num(reco["Muon"]))
    is_e = np.arange(n) % 2 == 0
    for mask, found, expected in ((is_e, n_e, electron_efficiency(np.full(n, 40.0), eta)),
                                  (~is_e, n_mu, muon_efficiency(np.full(n, 40.0), eta))):
        p = expected[mask].mean()
        sigma = np.sqrt(p * (1 - p) / mask.sum())
        assert abs(found[mask].mean() - p) < 4 * sigma
    assert ak.all(reco["Electron"].charge == 1) and ak.all(reco["Muon"].charge == -1)


def test_non_isolated_lepton_is_lost():
    # a muon with 30 GeV of hadrons within dR = 0.2: pT ratio 30 / 40 > 0.25
    leptons = [[(13, 40.0, 0.0, 0.0)]] * 200
    visible = [[(211, 30.0, 0.1, 0.1)]] * 200
    reco = reconstruct(_columns(leptons, visible), np.random.default_rng(1), CARD)
    assert ak.sum(ak.num(reco["Muon"])) == 0


def test_btag_rate_of_b_jets_matches_the_formula():
    n = 8000
    # one 60 GeV b quark per event (a jet of flavour 5), plus a 50 GeV light jet far away
    visible = [[(5, 60.0, 0.3, 0.0), (21, 50.0, -1.0, 2.5)] for _ in range(n)]
    reco = reconstruct(_columns([[] for _ in range(n)], visible), np.random.default_rng(11), CARD)
    jets = reco["Jet"]
    flavour = ak.to_numpy(ak.flatten(jets.hadronFlavour))
    tagged = ak.to_numpy(ak.flatten(jets.btag))
    expected = btag_efficiency(ak.to_numpy(ak.flatten(jets.pt)), flavour)
    for value in (5, 0):
        sel = flavour == value
        p = expected[sel].mean()
        assert sel.sum() > 0.9 * n
        assert abs(tagged[sel].mean() - p) < 4 * np.sqrt(p * (1 - p) / sel.sum())


def test_met_balances_the_visible_system():
    # no neutrinos: the visible particles balance, so MET comes only from resolution (a few GeV)
    visible = [[(21, 80.0, 0.0, 0.0), (21, 80.0, 0.5, np.pi)] for _ in range(2000)]
    reco = reconstruct(_columns([[] for _ in range(2000)], visible), np.random.default_rng(5), CARD)
    met = np.hypot(reco["MET_px"], reco["MET_py"])
    # two 80 GeV jets, sigma(E)/E ~ 13-14%: MET ~ 80 * 0.14 * sqrt(2) * sqrt(pi/4)
    assert 8 < np.median(met) < 20


def test_pairs_in_events_with_nothing_to_pair():
    ia, ib = pairs_in_events(np.array([0, 0]), np.array([3, 1]))
    assert ia.size == 0 and ib.size == 0
