"""Each cut passes and fails on hand-built events; the b-jet candidates are chosen as configured."""

from __future__ import annotations

import numpy as np
import pytest
import uproot
from root_events import event, good_emu, write_events

from mtt.core.events.params import NanoAODParams, SelectionParams
from mtt.core.events.schemas import NATIVE, to_objects
from mtt.core.events.selection import CUTS, select

SEL = SelectionParams()


def _select(tmp_path, events, sel=SEL):
    path = write_events(tmp_path / "events.root", events)
    arrays = uproot.open(path)["Events"].arrays(NATIVE.branches(with_truth=True))
    return select(to_objects(arrays, NATIVE, "GeV", NanoAODParams(), with_truth=True), sel)


def _failed_cut(tmp_path, evt, sel=SEL) -> str | None:
    """The first cut the single event fails, or None if it passes."""
    _, cutflow, _ = _select(tmp_path, [evt], sel)
    return next((name for name in CUTS if cutflow[name] == 0), None)


def test_good_event_passes_every_cut(tmp_path):
    assert _failed_cut(tmp_path, good_emu()) is None


@pytest.mark.parametrize(("evt", "cut"), [
    (good_emu(muons=[]), "two_leptons"),                                              # one lepton
    (good_emu(muons=[(40.0, -0.5, 2.0, -1), (30.0, 1.5, -1.0, 1)]), "two_leptons"),  # three leptons
    (good_emu(muons=[(40.0, -0.5, 2.0, 1)]), "opposite_sign"),                        # e+ mu+
    (good_emu(electrons=[(24.0, 0.5, 0.0, 1)], muons=[(22.0, -0.5, 2.0, -1)]), "leading_lepton_pt"),
    (good_emu(muons=[(19.0, -0.5, 2.0, -1)]), "two_leptons"),                         # sub-leading below 20
    (good_emu(muons=[(40.0, 2.5, 2.0, -1)]), "two_leptons"),                          # |eta| > 2.4
    (good_emu(electrons=[(50.0, 1.5, 0.0, 1)]), "two_leptons"),                       # electron in the gap
    # m_ll = sqrt(2 * 26 * 21 * (cosh 0.1 - cos 0.1)) = 3.30 GeV < 20
    (good_emu(electrons=[(26.0, 0.0, 0.0, 1)], muons=[(21.0, 0.1, 0.1, -1)]), "m_ll"),
    # ee back to back at eta 0: m_ll = 2 * 45.5 = 91 GeV, inside the Z window
    (good_emu(electrons=[(45.5, 0.0, 0.0, 1), (45.5, 0.0, np.pi, -1)], muons=[]), "z_veto"),
    # ee at m_ll = 120 GeV with MET 30 < 40
    (event(electrons=[(60.0, 0.0, 0.0, 1), (60.0, 0.0, np.pi, -1)],
           jets=[(60.0, 1.0, -2.0, 10.0, True), (45.0, -1.2, 1.5, 8.0, False)], met=(30.0, 1.0)), "met_same_flavour"),
    (good_emu(jets=[(60.0, 1.0, -2.0, 10.0, True), (29.0, -1.2, 1.0, 8.0, False)]), "two_jets"),  # pT < 30
    (good_emu(jets=[(60.0, 1.0, -2.0, 10.0, True), (45.0, 2.5, 1.0, 8.0, False)]), "two_jets"),   # |eta| > 2.4
    # second jet at dR = 0.3 from the electron (eta 0.5, phi 0): removed
    (good_emu(jets=[(60.0, 1.0, -2.0, 10.0, True), (45.0, 0.8, 0.0, 8.0, False)]), "two_jets"),
    (good_emu(jets=[(60.0, 1.0, -2.0, 10.0, False), (45.0, -1.2, 1.0, 8.0, False)]), "btag"),
])
def test_each_cut_fails_where_it_should(tmp_path, evt, cut):
    assert _failed_cut(tmp_path, evt) == cut


def test_same_flavour_outside_z_with_met_passes(tmp_path):
    evt = event(electrons=[(60.0, 0.0, 0.0, 1), (60.0, 0.0, np.pi, -1)],
                jets=[(60.0, 1.0, -2.0, 10.0, True), (45.0, -1.2, 1.5, 8.0, False)], met=(50.0, 1.0))
    assert _failed_cut(tmp_path, evt) is None


def test_cuts_are_params(tmp_path):
    soft = good_emu(electrons=[(24.0, 0.5, 0.0, 1)], muons=[(22.0, -0.5, 2.0, -1)])
    assert _failed_cut(tmp_path, soft, SelectionParams(lepton_pt_lead=20.0)) is None
    untagged = good_emu(jets=[(60.0, 1.0, -2.0, 10.0, False), (45.0, -1.2, 1.0, 8.0, False)])
    assert _failed_cut(tmp_path, untagged, SelectionParams(n_btag_min=0)) is None


def test_cutflow_is_cumulative(tmp_path):
    events = [good_emu(), good_emu(muons=[]), good_emu(muons=[(40.0, -0.5, 2.0, 1)]),
              good_emu(jets=[(60.0, 1.0, -2.0, 10.0, False), (45.0, -1.2, 1.0, 8.0, False)])]
    passed, cutflow, _ = _select(tmp_path, events)
    assert passed.tolist() == [True, False, False, False]
    assert [cutflow[c] for c in CUTS] == [4, 4, 3, 2, 2, 2, 2, 2, 2, 1]


def test_bjet_candidates_by_score_then_pt_or_by_pt(tmp_path):
    jets = [(70.0, 1.0, -2.0, 10.0, False), (40.0, -1.2, 1.0, 8.0, True), (35.0, 2.0, -1.0, 5.0, False)]
    _, _, by_tag = _select(tmp_path, [good_emu(jets=jets)])
    assert by_tag.b1.pt.tolist() == pytest.approx([40.0]) and by_tag.b2.pt.tolist() == pytest.approx([70.0])
    _, _, by_pt = _select(tmp_path, [good_emu(jets=jets)], SelectionParams(bjet_choice="pt"))
    assert by_pt.b1.pt.tolist() == pytest.approx([70.0]) and by_pt.b2.pt.tolist() == pytest.approx([40.0])


def test_lplus_and_lminus_follow_the_charge(tmp_path):
    # mu+ is the leading lepton here, e- the sub-leading
    evt = good_emu(electrons=[(30.0, 0.5, 0.0, -1)], muons=[(80.0, -0.5, 2.0, 1)])
    _, _, c = _select(tmp_path, [evt])
    assert c.lplus.pt.tolist() == pytest.approx([80.0]) and c.lplus.flavour.tolist() == [13]
    assert c.lminus.pt.tolist() == pytest.approx([30.0]) and c.lminus.flavour.tolist() == [11]
