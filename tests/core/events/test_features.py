"""Feature values against numbers worked out by hand; the sets and their units."""

from __future__ import annotations

import numpy as np
import pytest
import uproot
from root_events import ELECTRON_MASS, MUON_MASS, good_emu, write_events

from mtt.core.dataset import FEATURE_SETS, feature_columns, unit
from mtt.core.events.features import all_features
from mtt.core.events.params import NanoAODParams, SelectionParams
from mtt.core.events.schemas import NATIVE, to_objects
from mtt.core.events.selection import select


def _by_hand_mass(*objects: tuple[float, float, float, float]) -> float:
    """Invariant mass from (pt, eta, phi, m) with E = sqrt(pT^2 cosh^2 eta + m^2), pz = pT sinh eta."""
    e = px = py = pz = 0.0
    for pt, eta, phi, m in objects:
        e += np.sqrt((pt * np.cosh(eta)) ** 2 + m**2)
        px += pt * np.cos(phi)
        py += pt * np.sin(phi)
        pz += pt * np.sinh(eta)
    return float(np.sqrt(e**2 - px**2 - py**2 - pz**2))


@pytest.fixture
def features(tmp_path):
    path = write_events(tmp_path / "e.root", [good_emu()])
    arrays = uproot.open(path)["Events"].arrays(NATIVE.branches(with_truth=True))
    _, _, candidates = select(to_objects(arrays, NATIVE, "GeV", NanoAODParams(), True), SelectionParams())
    return {k: float(v[0]) for k, v in all_features(candidates).items()}


LPLUS, LMINUS = (50.0, 0.5, 0.0, ELECTRON_MASS), (40.0, -0.5, 2.0, MUON_MASS)
B1, B2 = (60.0, 1.0, -2.0, 10.0), (45.0, -1.2, 1.0, 8.0)


def test_pair_masses(features):
    # massless approximation: m_ll^2 = 2 * 50 * 40 * (cosh 1 - cos 2) = 4000 * 1.959227 -> 88.5253 GeV
    assert features["m_ll"] == pytest.approx(np.sqrt(4000 * (np.cosh(1.0) - np.cos(2.0))), rel=1e-4)
    assert features["m_ll"] == pytest.approx(_by_hand_mass(LPLUS, LMINUS), rel=1e-6)
    assert features["m_bb"] == pytest.approx(_by_hand_mass(B1, B2), rel=1e-6)
    assert features["m_lplus_b1"] == pytest.approx(_by_hand_mass(LPLUS, B1), rel=1e-6)
    assert features["m_lplus_b2"] == pytest.approx(_by_hand_mass(LPLUS, B2), rel=1e-6)
    assert features["m_lminus_b1"] == pytest.approx(_by_hand_mass(LMINUS, B1), rel=1e-6)
    assert features["m_lminus_b2"] == pytest.approx(_by_hand_mass(LMINUS, B2), rel=1e-6)
    assert features["m_vis"] == pytest.approx(_by_hand_mass(LPLUS, LMINUS, B1, B2), rel=1e-6)


def test_angles(features):
    assert features["dr_lplus_lminus"] == pytest.approx(np.hypot(1.0, 2.0), rel=1e-6)  # deta 1, dphi 2
    assert features["dphi_lplus_lminus"] == pytest.approx(-2.0, rel=1e-6)
    # b1 at phi -2, b2 at phi 1: dphi = -3; lplus (phi 0) to b1: dR = hypot(0.5, 2)
    assert features["dphi_b1_b2"] == pytest.approx(-3.0, rel=1e-6)
    assert features["dr_lplus_b1"] == pytest.approx(np.hypot(0.5, 2.0), rel=1e-6)
    # lminus (phi 2) to b1 (phi -2): dphi = 4 wraps to 4 - 2 pi
    assert features["dphi_lminus_b1"] == pytest.approx(4.0 - 2 * np.pi, rel=1e-6)


def test_lowlevel_and_event_features(features):
    assert features["lplus_pt"] == pytest.approx(50.0) and features["lminus_eta"] == pytest.approx(-0.5)
    assert features["b1_e"] == pytest.approx(np.sqrt((60 * np.cosh(1.0)) ** 2 + 100), rel=1e-6)
    assert features["met_px"] == pytest.approx(50 * np.cos(3.0), rel=1e-6)
    assert features["met_py"] == pytest.approx(50 * np.sin(3.0), rel=1e-5)
    assert features["ht"] == pytest.approx(105.0)
    assert features["n_jets"] == 2 and features["n_bjets"] == 1


def test_feature_sets():
    assert FEATURE_SETS["seed"] == ["m_ll", "m_lplus_b1", "m_lplus_b2", "m_lminus_b1", "m_lminus_b2", "m_bb",
                                    "met_pt"]
    assert len(FEATURE_SETS["lowlevel"]) == 18
    assert set(FEATURE_SETS["lowlevel"]) < set(FEATURE_SETS["extended"])
    assert set(FEATURE_SETS["seed"]) < set(FEATURE_SETS["extended"])
    assert feature_columns(["seed", "lowlevel"])[:7] == FEATURE_SETS["seed"]
    assert len(feature_columns(["seed", "lowlevel", "extended"])) == len(FEATURE_SETS["extended"])


def test_units():
    assert unit("m_ll") == "GeV" and unit("lplus_e") == "GeV" and unit("met_px") == "GeV"
    assert unit("b1_eta") == "" and unit("top_y") == "" and unit("dr_b1_b2") == "" and unit("n_jets") == ""
    assert unit("met_phi") == "rad" and unit("dphi_lplus_b1") == "rad"
