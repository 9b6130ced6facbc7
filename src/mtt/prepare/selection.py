"""CMS-style dilepton selection on canonical objects, with a cutflow (physics.md section 5)."""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np

from mtt.config import SelectionParams
from mtt.prepare.schemas import Objects

#: cut names in the order they are applied; each cutflow entry counts events passing it and all before
CUTS = ("all", "two_leptons", "opposite_sign", "leading_lepton_pt", "m_ll", "z_veto", "met_same_flavour",
        "two_jets", "btag")


@dataclass
class Candidates:
    """The objects of the selected events: l+, l-, the two b-jet candidates, all selected jets."""

    lplus: ak.Array
    lminus: ak.Array
    b1: ak.Array
    b2: ak.Array
    jets: ak.Array
    met_pt: np.ndarray
    met_phi: np.ndarray


def _fill(values: ak.Array, default: float | bool) -> np.ndarray:
    return ak.to_numpy(ak.fill_none(values, default))


def good_leptons(leptons: ak.Array, sel: SelectionParams) -> ak.Array:
    """Leptons within pT and |eta|, electrons outside the barrel-endcap gap (pT order kept)."""
    abs_eta = abs(leptons.eta)
    in_gap = (leptons.flavour == 11) & (abs_eta > sel.electron_gap[0]) & (abs_eta < sel.electron_gap[1])
    return leptons[(leptons.pt > sel.lepton_pt_min) & (abs_eta < sel.lepton_eta_max) & ~in_gap]


def clean_jets(jets: ak.Array, l1: ak.Array, l2: ak.Array, sel: SelectionParams) -> ak.Array:
    """Jets within pT and |eta| and at least jet_lepton_dr_min from both leptons."""
    far = ak.fill_none(jets.deltaR(l1) > sel.jet_lepton_dr_min, True) & ak.fill_none(
        jets.deltaR(l2) > sel.jet_lepton_dr_min, True)
    return jets[(jets.pt > sel.jet_pt_min) & (abs(jets.eta) < sel.jet_eta_max) & far]


def order_bjet_candidates(jets: ak.Array, choice: str) -> ak.Array:
    """Jets ordered as b-jet candidates: by b-tag score then pT, or by pT alone."""
    by_pt = jets[ak.argsort(jets.pt, ascending=False)]
    if choice == "pt":
        return by_pt
    return by_pt[ak.argsort(by_pt.btag, ascending=False, stable=True)]


def select(objects: Objects, sel: SelectionParams) -> tuple[np.ndarray, dict[str, int], Candidates]:
    """Apply the selection; return the event mask, the cutflow of this batch and the candidates."""
    leptons = good_leptons(objects.leptons, sel)
    pair = ak.pad_none(leptons, 2, clip=True)
    l1, l2 = pair[:, 0], pair[:, 1]
    m_ll = _fill((l1 + l2).mass, 0.0)
    same_flavour = _fill(l1.flavour == l2.flavour, False)
    in_z = (m_ll > sel.z_window[0]) & (m_ll < sel.z_window[1])
    jets = clean_jets(objects.jets, l1, l2, sel)
    cuts = {
        "all": np.ones(len(objects), dtype=bool),
        "two_leptons": ak.to_numpy(ak.num(leptons) == 2),
        "opposite_sign": _fill(l1.charge * l2.charge < 0, False),
        "leading_lepton_pt": _fill(l1.pt > sel.lepton_pt_lead, False),
        "m_ll": m_ll > sel.m_ll_min,
        "z_veto": ~(same_flavour & in_z),
        "met_same_flavour": ~same_flavour | (objects.met_pt > sel.met_min_same_flavour),
        "two_jets": ak.to_numpy(ak.num(jets) >= sel.n_jets_min),
        "btag": ak.to_numpy(ak.sum(jets.tagged, axis=1) >= sel.n_btag_min),
    }
    passed = np.ones(len(objects), dtype=bool)
    cutflow: dict[str, int] = {}
    for name in CUTS:
        passed &= cuts[name]
        cutflow[name] = int(passed.sum())
    l1, l2 = l1[passed], l2[passed]
    plus_first = ak.to_numpy(l1.charge > 0)
    ordered = order_bjet_candidates(jets[passed], sel.bjet_choice)
    candidates = Candidates(
        lplus=ak.where(plus_first, l1, l2),
        lminus=ak.where(plus_first, l2, l1),
        b1=ordered[:, 0],
        b2=ordered[:, 1],
        jets=jets[passed],
        met_pt=objects.met_pt[passed],
        met_phi=objects.met_phi[passed],
    )
    return passed, cutflow, candidates
