"""How often the b-jet candidates are the jets of the true b quarks: what the choice of two jets costs.

A jet matches a quark within Delta R < `dr_max`. Per event: whether both b quarks have a selected jet
(`available`: without it no choice of two jets can be right), and whether {b1, b2} are the jets of {b, bbar}
one to one (`correct`). Simulated samples only (the truth b quarks are GenB / GenBbar).
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from mtt.core.kinematics import delta_r

#: the truth b quarks in the native (simulate) layout, eta and phi
B_TRUTH = {"b_eta": "GenB_eta", "b_phi": "GenB_phi", "bbar_eta": "GenBbar_eta", "bbar_phi": "GenBbar_phi"}
DR_MAX = 0.4


def _near(eta: np.ndarray, phi: np.ndarray, quark_eta: np.ndarray, quark_phi: np.ndarray, dr_max: float) -> np.ndarray:
    return delta_r(eta, phi, quark_eta, quark_phi) < dr_max


def b_candidate_match(b1: ak.Array, b2: ak.Array, jets: ak.Array, quarks: dict[str, np.ndarray],
                      dr_max: float = DR_MAX) -> tuple[np.ndarray, np.ndarray]:
    """(available, correct) per event, from the candidates' and jets' eta/phi and the quarks' (B_TRUTH keys)."""
    b_eta, b_phi, bbar_eta, bbar_phi = (np.asarray(quarks[k], dtype=np.float64) for k in B_TRUTH)
    counts = ak.to_numpy(ak.num(jets))
    event = np.repeat(np.arange(counts.size), counts)
    eta, phi = ak.to_numpy(ak.flatten(jets.eta)), ak.to_numpy(ak.flatten(jets.phi))
    has_b = np.zeros(counts.size, bool)
    has_bbar = np.zeros(counts.size, bool)
    np.logical_or.at(has_b, event, _near(eta, phi, b_eta[event], b_phi[event], dr_max))
    np.logical_or.at(has_bbar, event, _near(eta, phi, bbar_eta[event], bbar_phi[event], dr_max))
    e1, p1, e2, p2 = (ak.to_numpy(x).astype(np.float64) for x in (b1.eta, b1.phi, b2.eta, b2.phi))
    straight = _near(e1, p1, b_eta, b_phi, dr_max) & _near(e2, p2, bbar_eta, bbar_phi, dr_max)
    crossed = _near(e1, p1, bbar_eta, bbar_phi, dr_max) & _near(e2, p2, b_eta, b_phi, dr_max)
    return has_b & has_bbar, straight | crossed


def match_summary(counts: dict[str, int]) -> dict[str, float]:
    """Fractions for the cutflow report from summed counts (events, available, correct)."""
    events = counts.get("events", 0)
    if not events:
        return {}
    return {"events": events, "b_jets_available": counts["available"] / events,
            "b_candidates_correct": counts["correct"] / events,
            "b_candidates_correct_when_available": counts["correct"] / max(counts["available"], 1)}
