"""Delphes-CMS-like detector response, vectorised over a chunk of events (physics.md section 4).

Inputs are the columns from :mod:`mtt.stages.simulate.generator`; outputs are reconstructed electrons, muons,
anti-kT jets (fastjet) with truth flavour and b-tag decisions, and MET. Every random number comes from the
chunk's own generator, drawn in a fixed order, so a chunk is reproducible on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np
import vector

from mtt.core.kinematics import delta_r

ELECTRON_MASS = 0.000511
MUON_MASS = 0.10566


@dataclass(frozen=True)
class DetectorCard:
    """Numbers from the Delphes CMS card (delphes_card_CMS.tcl); jets follow CMS Run 2 (R = 0.4)."""

    tracker_eta_max: float = 2.5
    calo_eta_max: float = 5.0
    electron_pt_min: float = 10.0
    muon_pt_min: float = 10.0
    muon_eta_max: float = 2.4
    iso_dr: float = 0.5
    iso_pt_min: float = 0.5
    iso_max_electron: float = 0.12
    iso_max_muon: float = 0.25
    jet_radius: float = 0.4
    jet_pt_min: float = 20.0
    btag_eta_max: float = 2.5
    #: resolution of each MET component from unclustered energy: k * sqrt(sum ET) (GeV)
    met_soft_resolution: float = 0.5


# --- resolutions and efficiencies (flat numpy arrays in, flat numpy arrays out) -------------------------


def electron_resolution(pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Relative electron pT resolution sigma(pT)/pT."""
    a = np.abs(eta)
    return np.select(
        [a <= 0.5, a <= 1.5, a <= 2.5],
        [np.hypot(0.03, pt * 1.3e-3), np.hypot(0.05, pt * 1.7e-3), np.hypot(0.15, pt * 3.1e-3)],
        default=0.0,
    )


def muon_resolution(pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Relative muon pT resolution sigma(pT)/pT."""
    a = np.abs(eta)
    return np.select(
        [a <= 0.5, a <= 1.5, a <= 2.5],
        [np.hypot(0.01, pt * 1.0e-4), np.hypot(0.015, pt * 1.5e-4), np.hypot(0.025, pt * 3.5e-4)],
        default=0.0,
    )


def electron_efficiency(pt: np.ndarray, eta: np.ndarray, card: DetectorCard = DetectorCard()) -> np.ndarray:
    """Electron identification efficiency: 0.95 in the barrel, 0.85 in the endcaps, 0 below 10 GeV."""
    a = np.abs(eta)
    eff = np.select([a <= 1.5, a <= card.tracker_eta_max], [0.95, 0.85], default=0.0)
    return np.where(pt > card.electron_pt_min, eff, 0.0)


def muon_efficiency(pt: np.ndarray, eta: np.ndarray, card: DetectorCard = DetectorCard()) -> np.ndarray:
    """Muon identification efficiency: 0.95 within |eta| <= 2.4 above 10 GeV."""
    return np.where((np.abs(eta) <= card.muon_eta_max) & (pt > card.muon_pt_min), 0.95, 0.0)


def jet_energy_resolution(energy: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Absolute jet energy resolution sigma(E) in GeV from the card's HCAL terms."""
    a = np.abs(eta)
    central = np.sqrt(energy**2 * 0.050**2 + energy * 1.50**2)
    forward = np.sqrt(energy**2 * 0.130**2 + energy * 2.70**2)
    return np.where(a <= 3.0, central, forward)


def btag_efficiency(pt: np.ndarray, flavour: np.ndarray) -> np.ndarray:
    """b-tag probability by truth flavour (5: b, 4: c, else light)."""
    b = 0.85 * np.tanh(0.0025 * pt) * (25.0 / (1 + 0.063 * pt))
    c = 0.25 * np.tanh(0.018 * pt) * (1 / (1 + 0.0013 * pt))
    light = 0.01 + 0.000038 * pt
    return np.select([flavour == 5, flavour == 4], [b, c], default=light)


def lognormal_smear(value: np.ndarray, rel_sigma: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Multiply by a log-normal factor of mean 1 and relative width `rel_sigma` (Delphes-style)."""
    s2 = np.log1p(rel_sigma**2)
    return value * np.exp(np.sqrt(s2) * z - 0.5 * s2)


# --- objects -----------------------------------------------------------------------------------------


def _momenta(cols: dict[str, np.ndarray]) -> Any:
    """Jagged Momentum4D array from a (counts, flat px/py/pz/e) column block."""
    flat = ak.zip({"px": cols["px"], "py": cols["py"], "pz": cols["pz"], "E": cols["e"]},
                  with_name="Momentum4D")
    return ak.unflatten(flat, cols["n"])


def pairs_in_events(counts_a: np.ndarray, counts_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices (ia, ib) of every (a, b) pair that shares an event: a jagged cartesian product."""
    counts_a = np.asarray(counts_a, dtype=np.int64)
    counts_b = np.asarray(counts_b, dtype=np.int64)
    start_b = np.cumsum(counts_b) - counts_b
    event_of_a = np.repeat(np.arange(counts_a.size), counts_a)
    per_a = counts_b[event_of_a]
    ia = np.repeat(np.arange(event_of_a.size), per_a)
    first_of_a = np.cumsum(per_a) - per_a
    ib = np.arange(ia.size) - np.repeat(first_of_a, per_a) + np.repeat(start_b[event_of_a], per_a)
    return ia, ib


def _flat_kinematics(objects: Any) -> dict[str, np.ndarray]:
    return {k: ak.to_numpy(ak.flatten(getattr(objects, k))) for k in ("pt", "eta", "phi")}


def _isolation(leptons: Any, visible: Any, card: DetectorCard) -> np.ndarray:
    """Flat array: scalar pT sum of visible particles within iso_dr of each lepton, over the lepton pT."""
    soft = visible[visible.pt > card.iso_pt_min]
    lep, vis = _flat_kinematics(leptons), _flat_kinematics(soft)
    ia, ib = pairs_in_events(ak.to_numpy(ak.num(leptons)), ak.to_numpy(ak.num(soft)))
    near = delta_r(lep["eta"][ia], lep["phi"][ia], vis["eta"][ib], vis["phi"][ib]) < card.iso_dr
    sum_pt = np.bincount(ia[near], weights=vis["pt"][ib[near]], minlength=lep["pt"].size)
    return sum_pt / lep["pt"]


def reconstruct_leptons(
    columns: dict[str, Any], visible: Any, rng: np.random.Generator, card: DetectorCard
) -> dict[str, Any]:
    """Electrons and muons after acceptance, efficiency, isolation and pT smearing (pT-ordered)."""
    leptons = _momenta(columns["lepton"])
    pid = columns["lepton"]["pid"]
    counts = columns["lepton"]["n"]
    pt = ak.to_numpy(ak.flatten(leptons.pt))
    eta = ak.to_numpy(ak.flatten(leptons.eta))
    phi = ak.to_numpy(ak.flatten(leptons.phi))
    u_eff = rng.random(pt.size)
    z = rng.standard_normal(pt.size)
    is_e = np.abs(pid) == 11
    eff = np.where(is_e, electron_efficiency(pt, eta, card), muon_efficiency(pt, eta, card))
    iso = _isolation(leptons, visible, card) if pt.size else np.zeros(0)
    isolated = iso < np.where(is_e, card.iso_max_electron, card.iso_max_muon)
    reco_pt = lognormal_smear(pt, np.where(is_e, electron_resolution(pt, eta), muon_resolution(pt, eta)), z)
    accepted = (u_eff < eff) & isolated
    flat = {"pt": reco_pt, "eta": eta, "phi": phi, "mass": np.where(is_e, ELECTRON_MASS, MUON_MASS),
            "charge": -np.sign(pid).astype(np.int32), "true_pt": pt}
    out: dict[str, Any] = {}
    for name, mask in (("Electron", is_e), ("Muon", ~is_e)):
        keep = ak.unflatten(accepted & mask, counts)
        objects = ak.zip({k: ak.unflatten(v, counts) for k, v in flat.items()})[keep]
        objects = objects[ak.argsort(objects.pt, ascending=False)]
        out[name] = objects
    return out


def cluster_jets(visible: Any, card: DetectorCard) -> Any:
    """Anti-kT jets (fastjet) from visible final-state particles in the calorimeter acceptance."""
    import fastjet

    in_acceptance = visible[np.abs(visible.eta) < card.calo_eta_max]
    inputs = ak.zip({"px": in_acceptance.px, "py": in_acceptance.py, "pz": in_acceptance.pz,
                     "E": in_acceptance.E})
    jet_def = fastjet.JetDefinition(fastjet.antikt_algorithm, card.jet_radius)
    # cluster with a lower threshold so that upward smearing can lift a jet over jet_pt_min
    jets = fastjet.ClusterSequence(inputs, jet_def).inclusive_jets(min_pt=0.5 * card.jet_pt_min)
    return ak.zip({"px": jets.px, "py": jets.py, "pz": jets.pz, "E": jets.E}, with_name="Momentum4D")


def jet_flavour(jets: Any, tags: Any, radius: float) -> Any:
    """5 if a b quark lies within `radius` of the jet, else 4 for a c quark, else 0."""
    jet, tag = _flat_kinematics(jets), _flat_kinematics(tags)
    tag_flavour = np.abs(ak.to_numpy(ak.flatten(tags.pid)))
    ia, ib = pairs_in_events(ak.to_numpy(ak.num(jets)), ak.to_numpy(ak.num(tags)))
    near = delta_r(jet["eta"][ia], jet["phi"][ia], tag["eta"][ib], tag["phi"][ib]) < radius
    flavour = np.zeros(jet["pt"].size, dtype=np.int32)
    np.maximum.at(flavour, ia[near], tag_flavour[ib[near]].astype(np.int32))
    return ak.unflatten(flavour, ak.num(jets))


def reconstruct_jets(
    visible: Any, tags: Any, rng: np.random.Generator, card: DetectorCard
) -> tuple[Any, Any]:
    """Smeared, flavour-labelled, b-tagged jets above jet_pt_min (pT-ordered), and their true momenta."""
    true_jets = cluster_jets(visible, card)
    counts = ak.num(true_jets)
    energy = ak.to_numpy(ak.flatten(true_jets.E))
    eta = ak.to_numpy(ak.flatten(true_jets.eta))
    z = rng.standard_normal(energy.size)
    u_tag = rng.random(energy.size)
    scale = np.clip(1.0 + z * jet_energy_resolution(energy, eta) / np.maximum(energy, 1e-9), 0.0, None)
    jagged_scale = ak.unflatten(scale, counts)
    reco_jets = ak.zip({k: true_jets[k] * jagged_scale for k in ("px", "py", "pz", "E")},
                       with_name="Momentum4D")
    flavour = jet_flavour(true_jets, tags, card.jet_radius)
    reco_pt = ak.to_numpy(ak.flatten(reco_jets.pt))
    tag_prob = btag_efficiency(reco_pt, ak.to_numpy(ak.flatten(flavour)))
    tagged = (u_tag < tag_prob) & (np.abs(eta) <= card.btag_eta_max)
    jets = ak.zip({"px": reco_jets.px, "py": reco_jets.py, "pz": reco_jets.pz, "E": reco_jets.E,
                   "btag": ak.unflatten(tagged, counts), "hadronFlavour": flavour},
                  with_name="Momentum4D")
    keep = (jets.pt > card.jet_pt_min) & (np.abs(jets.eta) < card.calo_eta_max)
    order = ak.argsort(jets[keep].pt, ascending=False)
    return jets[keep][order], true_jets[keep][order]


def missing_et(
    visible: Any, leptons: dict[str, Any], lepton_truth: Any, jets: Any, true_jets: Any,
    rng: np.random.Generator, card: DetectorCard,
) -> tuple[np.ndarray, np.ndarray]:
    """MET (px, py): minus the visible sum, with reconstructed objects at their measured momenta."""
    in_calo = visible[np.abs(visible.eta) < card.calo_eta_max]
    lep_in = lepton_truth[np.abs(lepton_truth.eta) < card.calo_eta_max]
    sum_px = ak.sum(in_calo.px, axis=1) + ak.sum(lep_in.px, axis=1)
    sum_py = ak.sum(in_calo.py, axis=1) + ak.sum(lep_in.py, axis=1)
    # replace the true momenta of reconstructed jets and leptons by their measured ones
    sum_px = sum_px + ak.sum(jets.px - true_jets.px, axis=1)
    sum_py = sum_py + ak.sum(jets.py - true_jets.py, axis=1)
    for name in ("Electron", "Muon"):
        lep = leptons[name]
        delta_pt = lep.pt - lep.true_pt
        sum_px = sum_px + ak.sum(delta_pt * np.cos(lep.phi), axis=1)
        sum_py = sum_py + ak.sum(delta_pt * np.sin(lep.phi), axis=1)
    unclustered_et = np.clip(
        ak.to_numpy(ak.sum(in_calo.pt, axis=1) - ak.sum(true_jets.pt, axis=1)), 0.0, None
    )
    sigma = card.met_soft_resolution * np.sqrt(unclustered_et)
    noise = rng.standard_normal((2, sigma.size)) * sigma
    return -ak.to_numpy(sum_px) + noise[0], -ak.to_numpy(sum_py) + noise[1]


def reconstruct(columns: dict[str, Any], rng: np.random.Generator, card: DetectorCard) -> dict[str, Any]:
    """Full detector response for one chunk: leptons, jets, MET."""
    vector.register_awkward()
    visible_raw = columns["visible"]
    visible = _momenta(visible_raw)
    visible = ak.with_field(visible, ak.unflatten(visible_raw["pid"], visible_raw["n"]), "pid")
    hf = _momenta(columns["hf"])
    hf = ak.with_field(hf, ak.unflatten(columns["hf"]["pid"], columns["hf"]["n"]), "pid")
    heavy = (abs(visible.pid) == 4) | (abs(visible.pid) == 5)
    tags = ak.concatenate([visible[heavy], hf], axis=1)
    leptons = reconstruct_leptons(columns, visible, rng, card)
    jets, true_jets = reconstruct_jets(visible, tags, rng, card)
    met_px, met_py = missing_et(visible, leptons, _momenta(columns["lepton"]), jets, true_jets, rng, card)
    return {"Electron": leptons["Electron"], "Muon": leptons["Muon"], "Jet": jets,
            "MET_px": met_px, "MET_py": met_py}
