"""The features of `mtt.core.dataset.FEATURE_SETS`, computed from the selected candidates (l+, l-, b1, b2, MET).

- `seed`: the original setup — the 6 pairwise invariant masses of (l+, l-, b1, b2) plus MET;
- `lowlevel`: pT, eta, phi, E of l+, l-, b1, b2 and MET px, py;
- `extended`: `lowlevel` plus m_ll, m_bb, the four m_lb, dR and dphi between all object pairs, MET, HT,
  jet and b-tag multiplicities and the visible mass m(l+ l- b1 b2);
- `objects`: l+, l- and the leading `max_jets` jets by pT as (px, py, pz, log E, flavour or b-tag, mask),
  zero-padded, MET px/py and the multiplicities: a network over objects sees every jet, not only the two
  b-jet candidates;
- `ellipse`: the ellipse method's answers for each b/lepton pairing (hybrid inputs).
"""

from __future__ import annotations

import awkward as ak
import numpy as np
import vector

from mtt.core.dataset import (
    ELLIPSE_FEATURES,
    JET_FIELDS,
    LEPTON_FIELDS,
    LEPTON_SLOTS,
    MASS_NAMES,
    OBJECTS,
    PAIR_MASSES,
    PAIRS,
    TARGET,
    set_names,
)
from mtt.core.events.selection import Candidates
from mtt.core.kinematics import cartesian
from mtt.core.reco.ellipse import reconstruct_mtt


def _vectors(objects: ak.Array) -> vector.MomentumNumpy4D:
    return vector.array({k: ak.to_numpy(objects[k]).astype(np.float64) for k in ("pt", "eta", "phi", "mass")})


def all_features(c: Candidates) -> dict[str, np.ndarray]:
    """Every feature of every set, one value per selected event."""
    p4 = {name: _vectors(getattr(c, name)) for name in OBJECTS}
    out: dict[str, np.ndarray] = {}
    for name, v in p4.items():
        out.update({f"{name}_pt": v.pt, f"{name}_eta": v.eta, f"{name}_phi": v.phi, f"{name}_e": v.E})
    out["met_pt"] = c.met_pt
    out["met_px"] = c.met_pt * np.cos(c.met_phi)
    out["met_py"] = c.met_pt * np.sin(c.met_phi)
    for (a, b), mass in zip(PAIRS, PAIR_MASSES, strict=True):
        out[MASS_NAMES.get(mass, mass)] = (p4[a] + p4[b]).mass
        out[f"dr_{a}_{b}"] = p4[a].deltaR(p4[b])
        out[f"dphi_{a}_{b}"] = p4[a].deltaphi(p4[b])
    out["ht"] = ak.to_numpy(ak.sum(c.jets.pt, axis=1))
    out["n_jets"] = ak.to_numpy(ak.num(c.jets)).astype(np.float64)
    out["n_bjets"] = ak.to_numpy(ak.sum(c.jets.tagged, axis=1)).astype(np.float64)
    out["m_vis"] = (p4["lplus"] + p4["lminus"] + p4["b1"] + p4["b2"]).mass
    return out


def _cartesian(objects: ak.Array) -> dict[str, np.ndarray]:
    """px, py, pz, log E of flat (one per event) objects."""
    v = _vectors(objects)
    return {"px": v.px, "py": v.py, "pz": v.pz, "loge": np.log(v.E)}


def object_features(c: Candidates, max_jets: int) -> dict[str, np.ndarray]:
    """The `objects` set: leptons by charge slot, the leading `max_jets` jets by pT (zero-padded, mask 0)."""
    out: dict[str, np.ndarray] = {}
    for slot in LEPTON_SLOTS:
        lepton = getattr(c, slot)
        values = {**_cartesian(lepton), "muon": (ak.to_numpy(lepton.flavour) == 13).astype(np.float64)}
        out.update({f"{slot}_{k}": values[k] for k in LEPTON_FIELDS})
    jets = c.jets[ak.argsort(c.jets.pt, ascending=False)]
    counts = ak.to_numpy(ak.num(jets))
    event = np.repeat(np.arange(counts.size), counts)
    slot = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    kept = slot < max_jets
    flat = ak.flatten(jets)
    values = {**_cartesian(flat), "btag": ak.to_numpy(flat.btag).astype(np.float64), "mask": np.ones(len(flat))}
    for k in JET_FIELDS:
        grid = np.zeros((counts.size, max_jets))
        grid[event[kept], slot[kept]] = values[k][kept]
        out.update({f"jet{i}_{k}": grid[:, i] for i in range(max_jets)})
    return {name: out[name] for name in [*(f"{s}_{k}" for s in LEPTON_SLOTS for k in LEPTON_FIELDS),
                                          *(f"jet{i}_{k}" for i in range(max_jets) for k in JET_FIELDS)]}


def ellipse_features(features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per pairing (1: b1 with l+, 2: b2 with l+): exact solution (0/1), its smallest m_tt (else the nearest
    approach's, with ellipses shrunk where none exist), the MET mismatch (0 when exact); 0 where none."""

    p4 = {name: cartesian(*(features[f"{name}_{k}"] for k in ("pt", "eta", "phi", "e"))) for name in OBJECTS}
    out: dict[str, np.ndarray] = {}
    for k, (b, bbar) in ((1, ("b1", "b2")), (2, ("b2", "b1"))):
        result = reconstruct_mtt(p4["lplus"], p4["lminus"], p4[b], p4[bbar], features["met_px"], features["met_py"],
                                 both_pairings=False)
        values = {"exact": result.exact.astype(np.float64), "mtt": result.m_tt, "mismatch": result.met_residual}
        out.update({f"ellipse{k}_{f}": np.nan_to_num(v, nan=0.0) for f, v in values.items()})
    return {name: out[name] for name in ELLIPSE_FEATURES}


def truth_columns(tops: np.ndarray) -> dict[str, np.ndarray]:
    """Target m_tt and the top/antitop pT and rapidity, from (n, 2, 4) pt/eta/phi/mass."""
    top, antitop = (vector.array({"pt": tops[:, i, 0], "eta": tops[:, i, 1], "phi": tops[:, i, 2],
                                  "mass": tops[:, i, 3]}) for i in (0, 1))
    return {TARGET: (top + antitop).mass, "top_pt": top.pt, "top_y": top.rapidity, "antitop_pt": antitop.pt,
            "antitop_y": antitop.rapidity}


def channel(c: Candidates) -> np.ndarray:
    """ee, emu or mumu from the two lepton flavours."""
    total = ak.to_numpy(c.lplus.flavour).astype(int) + ak.to_numpy(c.lminus.flavour).astype(int)
    return np.select([total == 22, total == 24, total == 26], ["ee", "emu", "mumu"], default="?")


def build_table(c: Candidates, columns: list[str], ids: dict[str, np.ndarray], weight: np.ndarray,
                tops: np.ndarray | None, sets: tuple[str, ...] = (), max_jets: int = 0) -> dict[str, np.ndarray]:
    """The output columns of selected events: features (float32), truth if any, identity columns."""
    features = all_features(c)
    names = {part for name in sets for part in set_names(name)}
    if "objects" in names:
        features.update(object_features(c, max_jets))
    if "ellipse" in names:
        features.update(ellipse_features(features))
    table = {name: features[name].astype(np.float32) for name in columns}
    if tops is not None:
        table.update({k: v.astype(np.float32) for k, v in truth_columns(tops).items()})
    table.update({"run": ids["run"].astype(np.uint32), "luminosityBlock": ids["luminosityBlock"].astype(np.uint32),
                  "event": ids["event"].astype(np.uint64), "weight": weight.astype(np.float32),
                  "channel": channel(c)})
    return table
