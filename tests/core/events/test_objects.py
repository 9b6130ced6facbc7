"""The objects and ellipse feature sets, and the b-candidate truth match, on hand-made events."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pandas as pd
import pytest
import uproot
from root_events import good_emu, write_events

from mtt.core.dataset import ELLIPSE_FEATURES, object_columns
from mtt.core.events.features import all_features, ellipse_features, object_features
from mtt.core.events.matching import b_candidate_match, match_summary
from mtt.core.events.params import NanoAODParams, SelectionParams
from mtt.core.events.schemas import NATIVE, to_objects
from mtt.core.events.selection import select

JETS = [(60.0, 1.0, -2.0, 10.0, True), (45.0, -1.2, 1.0, 8.0, False), (120.0, 0.2, 0.5, 12.0, False),
        (35.0, 2.0, 2.5, 5.0, False)]


def candidates_of(tmp_path, events):
    path = write_events(tmp_path / "e.root", events)
    arrays = uproot.open(path)["Events"].arrays(NATIVE.branches(with_truth=True))
    _, _, candidates = select(to_objects(arrays, NATIVE, "GeV", NanoAODParams(), True), SelectionParams())
    return candidates


def test_jets_land_in_their_pt_slot_and_the_mask_matches_n_jets(tmp_path):
    c = candidates_of(tmp_path, [good_emu(jets=JETS), good_emu()])
    out = object_features(c, max_jets=3)
    assert list(out) == object_columns(3)[:-4]  # the globals come from all_features
    # event 0: 4 jets, slots hold the leading 3 by pT: 120, 60, 45 GeV
    for slot, (pt, eta, phi, _, tagged) in enumerate([JETS[2], JETS[0], JETS[1]]):
        assert out[f"jet{slot}_px"][0] == pytest.approx(pt * np.cos(phi), rel=1e-6)
        assert out[f"jet{slot}_pz"][0] == pytest.approx(pt * np.sinh(eta), rel=1e-6)
        assert out[f"jet{slot}_btag"][0] == float(tagged)
    mass = JETS[2][3]
    assert np.exp(out["jet0_loge"][0]) == pytest.approx(np.hypot(120 * np.cosh(0.2), mass), rel=1e-6)
    # event 1: 2 jets, the third slot is padding
    assert [out[f"jet{i}_mask"][1] for i in range(3)] == [1.0, 1.0, 0.0]
    assert out["jet2_px"][1] == out["jet2_loge"][1] == out["jet2_btag"][1] == 0.0
    n_jets = all_features(c)["n_jets"]
    assert np.array_equal(sum(out[f"jet{i}_mask"] for i in range(3)), np.minimum(n_jets, 3))
    # leptons: e+ in the l+ slot (not a muon), mu- in the l- slot
    assert out["lplus_muon"][0] == 0.0 and out["lminus_muon"][0] == 1.0
    assert out["lplus_px"][0] == pytest.approx(50.0, rel=1e-6)


def test_hybrid_features_are_the_ellipse_methods_answers_per_pairing(small_prepared):
    from mtt.core.reco.ellipse import reconstruct_mtt

    table = pd.read_parquet(small_prepared / "test.parquet")
    features = {c: table[c].to_numpy(np.float64) for c in table.columns if table[c].dtype.kind == "f"}
    hybrid = ellipse_features(features)
    assert list(hybrid) == ELLIPSE_FEATURES
    p4 = {}
    for name in ("lplus", "lminus", "b1", "b2"):
        pt, eta, phi = (features[f"{name}_{k}"] for k in ("pt", "eta", "phi"))
        p4[name] = np.column_stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), features[f"{name}_e"]])
    both = reconstruct_mtt(p4["lplus"], p4["lminus"], p4["b1"], p4["b2"], features["met_px"], features["met_py"])
    # the two pairings together are the method: an exact solution in either, and its smallest m_tt
    assert np.array_equal(both.exact, (hybrid["ellipse1_exact"] + hybrid["ellipse2_exact"]) > 0)
    exact_mtt = np.where(hybrid["ellipse1_exact"] > 0, hybrid["ellipse1_mtt"], np.inf)
    exact_mtt = np.minimum(exact_mtt, np.where(hybrid["ellipse2_exact"] > 0, hybrid["ellipse2_mtt"], np.inf))
    assert np.allclose(exact_mtt[both.exact], both.m_tt[both.exact], rtol=1e-5)
    assert np.all(hybrid["ellipse1_mismatch"][hybrid["ellipse1_exact"] > 0] == 0.0)
    assert np.allclose(hybrid["ellipse1_mtt"], table["ellipse1_mtt"], rtol=1e-6)  # what prepare wrote


def test_b_candidate_match_of_a_hand_made_event_set():
    """Four events: right, swapped (still right), one candidate a light jet, a b quark without a jet."""
    jets = ak.zip({"eta": [[0.0, 1.0, -1.0], [0.0, 1.0], [0.0, 2.0, 1.0], [0.0, 1.0]],
                   "phi": [[0.0, 1.0, -1.0], [0.0, 1.0], [0.0, 2.0, 1.0], [0.0, 1.0]]})
    b1, b2 = jets[:, 0], jets[:, 1]
    quarks = {"b_eta": np.array([0.0, 1.0, 0.0, 0.0]), "b_phi": np.array([0.05, 1.0, 0.0, 0.0]),
              "bbar_eta": np.array([1.0, 0.0, 1.0, -2.0]), "bbar_phi": np.array([1.0, 0.1, 1.0, -2.0])}
    available, correct = b_candidate_match(b1, b2, jets, quarks)
    assert available.tolist() == [True, True, True, False]
    assert correct.tolist() == [True, True, False, False]
    summary = match_summary({"events": 4, "available": 3, "correct": 2})
    assert summary["b_candidates_correct"] == 0.5 and summary["b_candidates_correct_when_available"] == 2 / 3
