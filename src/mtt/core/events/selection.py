"""CMS-style dilepton selection on canonical objects, with a cutflow (physics.md section 5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from mtt.core.events.params import SelectionParams
from mtt.core.events.schemas import Objects
from mtt.core.kinematics import delta_r

#: cut names in the order they are applied; each cutflow entry counts events passing it and all before
#: (`finite_inputs`: no NaN/inf in the objects' and MET's branches, and in genWeight where weights are written)
CUTS = ("all", "finite_inputs", "two_leptons", "opposite_sign", "leading_lepton_pt", "m_ll", "z_veto",
        "met_same_flavour", "two_jets", "btag")


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


def good_leptons(leptons: ak.Array, sel: SelectionParams) -> ak.Array:
    """Leptons within pT and |eta|, electrons outside the barrel-endcap gap (none with electron_gap null; pT
    order kept)."""
    abs_eta = abs(leptons.eta)
    in_gap = (leptons.flavour == 11) & _inside(abs_eta, sel.electron_gap)
    return leptons[(leptons.pt > sel.lepton_pt_min) & (abs_eta < sel.lepton_eta_max) & ~in_gap]


def _inside(values: Any, window: tuple[float, float] | None) -> Any:
    """values strictly inside (low, high); nothing is inside a window switched off (null)."""
    if window is None:
        return values < -np.inf  # all False, in the shape of values (flat or jagged)
    return (values > window[0]) & (values < window[1])


def clean_jets(jets: ak.Array, l1: ak.Array, l2: ak.Array, sel: SelectionParams) -> ak.Array:
    """Jets within pT and |eta| and at least jet_lepton_dr_min from both leptons."""
    counts = ak.to_numpy(ak.num(jets))
    event_of = np.repeat(np.arange(counts.size), counts)
    pt, eta, phi = (ak.to_numpy(ak.flatten(jets[k])) for k in ("pt", "eta", "phi"))
    keep = (pt > sel.jet_pt_min) & (np.abs(eta) < sel.jet_eta_max)
    for lepton in (l1, l2):
        lepton_eta = ak.to_numpy(lepton.eta)[event_of]
        lepton_phi = ak.to_numpy(lepton.phi)[event_of]
        keep &= delta_r(eta, phi, lepton_eta, lepton_phi) > sel.jet_lepton_dr_min
    return jets[ak.unflatten(keep, counts)]


def order_bjet_candidates(jets: ak.Array, choice: str) -> ak.Array:
    """Jets ordered as b-jet candidates: by b-tag score then pT, or by pT alone."""
    by_pt = jets[ak.argsort(jets.pt, ascending=False)]
    if choice == "pt":
        return by_pt
    return by_pt[ak.argsort(by_pt.btag, ascending=False, stable=True)]


def select(objects: Objects, sel: SelectionParams) -> tuple[np.ndarray, dict[str, int], Candidates]:
    """Apply the selection; return the event mask, the cutflow of this batch and the candidates.

    Cuts after `two_leptons` are evaluated only on events with exactly two good leptons (the cutflow is
    cumulative, so the counts are the same), which keeps the rest free of missing-lepton special cases.
    `objects` are finite (`select_step` sets events with NaN/inf inputs aside and counts them in
    `finite_inputs`): a comparison with NaN is False, so a cut would drop them without a trace.
    """
    leptons = good_leptons(objects.leptons, sel)
    dilepton = np.flatnonzero(ak.to_numpy(ak.num(leptons) == 2))
    leptons = leptons[dilepton]
    l1, l2 = leptons[:, 0], leptons[:, 1]
    met_pt = objects.met_pt[dilepton]
    m_ll = ak.to_numpy((l1 + l2).mass)
    same_flavour = ak.to_numpy(l1.flavour == l2.flavour)
    in_z = _inside(m_ll, sel.z_window)
    jets = clean_jets(objects.jets[dilepton], l1, l2, sel)
    cuts = {
        "opposite_sign": ak.to_numpy(l1.charge * l2.charge < 0),
        "leading_lepton_pt": ak.to_numpy(l1.pt > sel.lepton_pt_lead),
        "m_ll": m_ll > sel.m_ll_min,
        "z_veto": ~(same_flavour & in_z),
        "met_same_flavour": ~same_flavour | (met_pt > sel.met_min_same_flavour),
        "two_jets": ak.to_numpy(ak.num(jets) >= sel.n_jets_min),
        "btag": ak.to_numpy(ak.sum(jets.tagged, axis=1) >= sel.n_btag_min),
    }
    cutflow = {"all": len(objects), "finite_inputs": len(objects), "two_leptons": int(dilepton.size)}
    kept = np.ones(dilepton.size, dtype=bool)
    for name in CUTS[CUTS.index("two_leptons") + 1:]:
        kept &= cuts[name]
        cutflow[name] = int(kept.sum())
    passed = np.zeros(len(objects), dtype=bool)
    passed[dilepton[kept]] = True
    l1, l2, jets = l1[kept], l2[kept], jets[kept]
    plus_first = ak.to_numpy(l1.charge > 0)
    ordered = order_bjet_candidates(jets, sel.bjet_choice)
    candidates = Candidates(
        lplus=ak.where(plus_first, l1, l2),
        lminus=ak.where(plus_first, l2, l1),
        b1=ordered[:, 0],
        b2=ordered[:, 1],
        jets=jets,
        met_pt=objects.met_pt[passed],
        met_phi=objects.met_phi[passed],
    )
    return passed, cutflow, candidates


def format_cutflow(cutflow: dict[str, int]) -> str:
    """A readable cutflow table: events, efficiency of each cut, cumulative efficiency."""
    lines = [f"{'cut':20s}{'events':>10s}{'eff':>8s}{'cumul':>8s}"]
    previous = total = cutflow["all"]
    for name in CUTS:
        n = cutflow[name]
        eff = n / previous if previous else 0.0
        cumul = n / total if total else 0.0
        lines.append(f"{name:20s}{n:10d}{eff:8.3f}{cumul:8.3f}")
        previous = n
    return "\n".join(lines)
