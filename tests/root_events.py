"""Hand-built events written as small native-schema ROOT files (the layout `mtt simulate` writes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

ELECTRON_MASS, MUON_MASS = 0.000511, 0.10566


def event(electrons=(), muons=(), jets=(), met=(50.0, 3.0), tops=((200.0, 0.5, 0.0, 173.0),
                                                                   (150.0, -0.3, 2.5, 173.0)),
          neutrinos=None) -> dict:
    """One event: leptons (pt, eta, phi, charge), jets (pt, eta, phi, mass, btag), MET (pt, phi), tops, and
    optionally the truth neutrino and antineutrino (pt, eta, phi)."""
    return {"electrons": list(electrons), "muons": list(muons), "jets": list(jets), "met": met, "tops": tops,
            "neutrinos": neutrinos}


def good_emu(**changes: Any) -> dict:
    """An e mu event that passes every cut: e+ 50 GeV, mu- 40 GeV, a tagged 60 GeV jet, a 45 GeV jet."""
    base = {"electrons": [(50.0, 0.5, 0.0, 1)], "muons": [(40.0, -0.5, 2.0, -1)],
            "jets": [(60.0, 1.0, -2.0, 10.0, True), (45.0, -1.2, 1.0, 8.0, False)]}
    base.update(changes)
    return event(**base)


def _jagged(rows: list[list[tuple]], index: int, dtype) -> ak.Array:
    return ak.values_astype(ak.Array([[obj[index] for obj in row] for row in rows]), dtype)


def branches(events: list[dict], energy_scale: float = 1.0, first_event: int = 0) -> dict[str, Any]:
    """Native-schema branches for `events` (energies multiplied by `energy_scale`, e.g. 1000 for MeV)."""
    n = len(events)
    out: dict[str, Any] = {
        "run": np.full(n, 1, dtype=np.uint32), "luminosityBlock": np.zeros(n, dtype=np.uint32),
        "event": np.arange(first_event, first_event + n, dtype=np.uint64),
    }
    for name, mass in (("Electron", ELECTRON_MASS), ("Muon", MUON_MASS)):
        rows = [e[f"{name.lower()}s"] for e in events]
        out[name] = ak.zip({
            "pt": _jagged(rows, 0, np.float32) * energy_scale, "eta": _jagged(rows, 1, np.float32),
            "phi": _jagged(rows, 2, np.float32),
            "mass": ak.values_astype(ak.ones_like(_jagged(rows, 0, np.float32)) * mass * energy_scale, np.float32),
            "charge": _jagged(rows, 3, np.int32)})
    rows = [e["jets"] for e in events]
    out["Jet"] = ak.zip({"pt": _jagged(rows, 0, np.float32) * energy_scale, "eta": _jagged(rows, 1, np.float32),
                         "phi": _jagged(rows, 2, np.float32), "mass": _jagged(rows, 3, np.float32) * energy_scale,
                         "btag": _jagged(rows, 4, bool), "hadronFlavour": _jagged(rows, 0, np.int32) * 0})
    out["MET_pt"] = np.array([e["met"][0] for e in events], dtype=np.float32) * energy_scale
    out["MET_phi"] = np.array([e["met"][1] for e in events], dtype=np.float32)
    for i, obj in enumerate(("Top", "Antitop")):
        for j, k in enumerate(("pt", "eta", "phi", "mass")):
            scale = energy_scale if k in ("pt", "mass") else 1.0
            out[f"Gen{obj}_{k}"] = np.array([e["tops"][i][j] for e in events], dtype=np.float32) * scale
    if all(e.get("neutrinos") is not None for e in events):
        for i, obj in enumerate(("Nu", "Antinu")):
            for j, k in enumerate(("pt", "eta", "phi")):
                scale = energy_scale if k == "pt" else 1.0
                out[f"Gen{obj}_{k}"] = np.array([e["neutrinos"][i][j] for e in events], dtype=np.float32) * scale
    out["genWeight"] = np.ones(n, dtype=np.float32)
    return out


def write_root(path: Path, data: dict[str, Any], tree: str = "Events") -> Path:
    """Write branches NanoAOD-style (nJet, Jet_pt, ...)."""
    with uproot.recreate(path) as root_file:
        root_file.mktree(tree, data, counter_name=lambda counted: f"n{counted}",
                         field_name=lambda outer, inner: f"{outer}_{inner}")
    return path


def write_events(path: Path, events: list[dict], **kwargs: Any) -> Path:
    """Write hand-built events to a native-schema ROOT file."""
    tree = kwargs.pop("tree", "Events")
    return write_root(path, branches(events, **kwargs), tree)
